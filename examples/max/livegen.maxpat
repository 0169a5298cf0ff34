{
	"patcher": {
		"fileversion": 1,
		"appversion": {
			"major": 8,
			"minor": 5,
			"revision": 0,
			"architecture": "x64",
			"modernui": 1
		},
		"classnamespace": "box",
		"rect": [ 60.0, 80.0, 1260.0, 900.0 ],
		"gridsize": [ 15.0, 15.0 ],
		"default_fontsize": 12.0,
		"description": "livegen over OSC: dials and buttons to livegen, notes/beats/params back, a small synth",
		"boxes": [
			{
				"box": {
					"id": "obj-1",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 20.0, 10.0, 560.0, 48.0 ],
					"text": "livegen <-> Max over OSC. Run livegen with: livegen play patches/touchdesigner.toml (or patches/puredata.toml). Dials send /livegen/param/<name>/unit (0..1 over the parameter's range) to livegen on UDP 127.0.0.1:9000; livegen sends notes, beats and parameters back to UDP 7000.",
					"linecount": 3
				}
			},
			{
				"box": {
					"id": "obj-2",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 20.0, 70.0, 400.0, 20.0 ],
					"text": "TO LIVEGEN",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-3",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "float" ],
					"patching_rect": [ 20.0, 95.0, 60.0, 48.0 ],
					"parameter_enable": 1,
					"varname": "arp.density",
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "arp.density",
							"parameter_shortname": "density",
							"parameter_type": 0,
							"parameter_mmin": 0.0,
							"parameter_mmax": 1.0,
							"parameter_initial_enable": 1,
							"parameter_initial": [ 0.6 ],
							"parameter_unitstyle": 1
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-4",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 20.0, 160.0, 105.0, 22.0 ],
					"text": "prepend /livegen/param/arp.density/unit"
				}
			},
			{
				"box": {
					"id": "obj-5",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "float" ],
					"patching_rect": [ 130.0, 95.0, 60.0, 48.0 ],
					"parameter_enable": 1,
					"varname": "arp.rest",
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "arp.rest",
							"parameter_shortname": "rest",
							"parameter_type": 0,
							"parameter_mmin": 0.0,
							"parameter_mmax": 1.0,
							"parameter_initial_enable": 1,
							"parameter_initial": [ 0.05 ],
							"parameter_unitstyle": 1
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-6",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 130.0, 160.0, 105.0, 22.0 ],
					"text": "prepend /livegen/param/arp.rest/unit"
				}
			},
			{
				"box": {
					"id": "obj-7",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "float" ],
					"patching_rect": [ 240.0, 95.0, 60.0, 48.0 ],
					"parameter_enable": 1,
					"varname": "arp.gate",
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "arp.gate",
							"parameter_shortname": "gate",
							"parameter_type": 0,
							"parameter_mmin": 0.0,
							"parameter_mmax": 1.0,
							"parameter_initial_enable": 1,
							"parameter_initial": [ 0.5 ],
							"parameter_unitstyle": 1
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-8",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 240.0, 160.0, 105.0, 22.0 ],
					"text": "prepend /livegen/param/arp.gate/unit"
				}
			},
			{
				"box": {
					"id": "obj-9",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "float" ],
					"patching_rect": [ 350.0, 95.0, 60.0, 48.0 ],
					"parameter_enable": 1,
					"varname": "synth.lead.cutoff",
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "synth.lead.cutoff",
							"parameter_shortname": "cutoff",
							"parameter_type": 0,
							"parameter_mmin": 0.0,
							"parameter_mmax": 1.0,
							"parameter_initial_enable": 1,
							"parameter_initial": [ 0.3 ],
							"parameter_unitstyle": 1
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-10",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 350.0, 160.0, 105.0, 22.0 ],
					"text": "prepend /livegen/param/synth.lead.cutoff/unit"
				}
			},
			{
				"box": {
					"id": "obj-11",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "float" ],
					"patching_rect": [ 460.0, 95.0, 60.0, 48.0 ],
					"parameter_enable": 1,
					"varname": "synth.master",
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "synth.master",
							"parameter_shortname": "master",
							"parameter_type": 0,
							"parameter_mmin": 0.0,
							"parameter_mmax": 1.0,
							"parameter_initial_enable": 1,
							"parameter_initial": [ 0.8 ],
							"parameter_unitstyle": 1
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-12",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 460.0, 160.0, 105.0, 22.0 ],
					"text": "prepend /livegen/param/synth.master/unit"
				}
			},
			{
				"box": {
					"id": "obj-13",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 20.0, 215.0, 50.0, 22.0 ],
					"minimum": 20,
					"maximum": 300,
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-14",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 75.0, 215.0, 120.0, 20.0 ],
					"text": "tempo (bpm)",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-15",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 20.0, 245.0, 166.0, 22.0 ],
					"text": "prepend /livegen/tempo"
				}
			},
			{
				"box": {
					"id": "obj-16",
					"maxclass": "button",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "bang" ],
					"patching_rect": [ 220.0, 215.0, 24.0, 24.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-17",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 220.0, 245.0, 173.0, 22.0 ],
					"text": "/livegen/trigger mutate"
				}
			},
			{
				"box": {
					"id": "obj-18",
					"maxclass": "button",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "bang" ],
					"patching_rect": [ 400.0, 215.0, 24.0, 24.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-19",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 400.0, 245.0, 173.0, 22.0 ],
					"text": "/livegen/trigger answer"
				}
			},
			{
				"box": {
					"id": "obj-20",
					"maxclass": "button",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "bang" ],
					"patching_rect": [ 580.0, 215.0, 24.0, 24.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-21",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 580.0, 245.0, 110.0, 22.0 ],
					"text": "/livegen/panic"
				}
			},
			{
				"box": {
					"id": "obj-22",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 20.0, 300.0, 166.0, 22.0 ],
					"text": "udpsend 127.0.0.1 9000"
				}
			},
			{
				"box": {
					"id": "obj-23",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 200.0, 300.0, 420.0, 34.0 ],
					"text": "livegen answers /livegen/get, /dump and /ping to the sender's port: udpsend does not listen, so use udpreceive on a port of your own for those.",
					"linecount": 2
				}
			},
			{
				"box": {
					"id": "obj-24",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 660.0, 70.0, 520.0, 34.0 ],
					"text": "FROM LIVEGEN: /livegen/note pitch velocity channel (velocity 0 = off), /livegen/beat beat bar beat-in-bar bpm, /livegen/param/<name> value, /livegen/panic.",
					"linecount": 2
				}
			},
			{
				"box": {
					"id": "obj-25",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 660.0, 115.0, 117.0, 22.0 ],
					"text": "udpreceive 7000"
				}
			},
			{
				"box": {
					"id": "obj-26",
					"maxclass": "newobj",
					"numinlets": 8,
					"numoutlets": 8,
					"outlettype": [ "", "", "", "", "", "", "", "" ],
					"patching_rect": [ 660.0, 145.0, 560.0, 22.0 ],
					"text": "route /livegen/note /livegen/beat /livegen/panic /livegen/param/arp.density /livegen/param/arp.gate /livegen/param/synth.lead.cutoff /livegen/param/tempo"
				}
			},
			{
				"box": {
					"id": "obj-27",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 1130.0, 175.0, 103.0, 22.0 ],
					"text": "print livegen"
				}
			},
			{
				"box": {
					"id": "obj-28",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "" ],
					"patching_rect": [ 660.0, 190.0, 47.0, 22.0 ],
					"text": "t l l"
				}
			},
			{
				"box": {
					"id": "obj-29",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": [ "int", "int", "int" ],
					"patching_rect": [ 660.0, 220.0, 96.0, 22.0 ],
					"text": "unpack 0 0 0"
				}
			},
			{
				"box": {
					"id": "obj-30",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 660.0, 250.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-31",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 715.0, 250.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-32",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 770.0, 250.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-33",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 660.0, 275.0, 170.0, 20.0 ],
					"text": "pitch / velocity / channel",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-34",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "" ],
					"patching_rect": [ 860.0, 190.0, 47.0, 22.0 ],
					"text": "t l l"
				}
			},
			{
				"box": {
					"id": "obj-35",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": [ "int", "int", "int", "float" ],
					"patching_rect": [ 860.0, 220.0, 117.0, 22.0 ],
					"text": "unpack 0 0 0 0."
				}
			},
			{
				"box": {
					"id": "obj-36",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 860.0, 250.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-37",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 915.0, 250.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-38",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 970.0, 250.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-39",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 1025.0, 250.0, 55.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-40",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 860.0, 275.0, 230.0, 20.0 ],
					"text": "beat / bar / beat in bar / bpm",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-41",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [ "bang", "" ],
					"patching_rect": [ 970.0, 300.0, 47.0, 22.0 ],
					"text": "sel 0"
				}
			},
			{
				"box": {
					"id": "obj-42",
					"maxclass": "button",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "bang" ],
					"patching_rect": [ 970.0, 330.0, 24.0, 24.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-43",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 1000.0, 332.0, 80.0, 20.0 ],
					"text": "downbeat",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-44",
					"maxclass": "toggle",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "int" ],
					"patching_rect": [ 1110.0, 190.0, 24.0, 24.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-45",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 1140.0, 190.0, 250.0, 48.0 ],
					"text": "echo: answer each beat with /livegen/echo <beat> (int), for livegen's OSC round-trip benchmark; point udpsend at it with port / host messages",
					"linecount": 3
				}
			},
			{
				"box": {
					"id": "obj-46",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 1110.0, 240.0, 54.0, 22.0 ],
					"text": "gate 1"
				}
			},
			{
				"box": {
					"id": "obj-47",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": [ "int", "int", "int", "float" ],
					"patching_rect": [ 1110.0, 270.0, 117.0, 22.0 ],
					"text": "unpack 0 0 0 0."
				}
			},
			{
				"box": {
					"id": "obj-48",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 1110.0, 300.0, 159.0, 22.0 ],
					"text": "prepend /livegen/echo"
				}
			},
			{
				"box": {
					"id": "obj-49",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 660.0, 400.0, 70.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-50",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 660.0, 425.0, 125.0, 20.0 ],
					"text": "arp.density",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-51",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 790.0, 400.0, 70.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-52",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 790.0, 425.0, 125.0, 20.0 ],
					"text": "arp.gate",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-53",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 920.0, 400.0, 70.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-54",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 920.0, 425.0, 125.0, 20.0 ],
					"text": "synth.lead.cutoff",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-55",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 1050.0, 400.0, 70.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-56",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 1050.0, 425.0, 125.0, 20.0 ],
					"text": "tempo",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-57",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 660.0, 375.0, 520.0, 20.0 ],
					"text": "parameter values (own units), sent by livegen whenever they change:",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-58",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 20.0, 380.0, 600.0, 48.0 ],
					"text": "SOUND: a small synth voice for livegen's notes on one channel ([route 0]: channel 0 = the arpeggiator in touchdesigner.toml, the melody in puredata.toml; [route 1] for its bass). Click the speaker to start audio.",
					"linecount": 3
				}
			},
			{
				"box": {
					"id": "obj-59",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 20.0, 435.0, 68.0, 22.0 ],
					"text": "$3 $1 $2"
				}
			},
			{
				"box": {
					"id": "obj-60",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [ "", "" ],
					"patching_rect": [ 20.0, 465.0, 61.0, 22.0 ],
					"text": "route 0"
				}
			},
			{
				"box": {
					"id": "obj-61",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 20.0, 495.0, 47.0, 22.0 ],
					"text": "$2 $1"
				}
			},
			{
				"box": {
					"id": "obj-62",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [ "", "" ],
					"patching_rect": [ 20.0, 525.0, 61.0, 22.0 ],
					"text": "route 0"
				}
			},
			{
				"box": {
					"id": "obj-63",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "int" ],
					"patching_rect": [ 20.0, 555.0, 30.0, 22.0 ],
					"text": "=="
				}
			},
			{
				"box": {
					"id": "obj-64",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [ "bang", "" ],
					"patching_rect": [ 20.0, 585.0, 47.0, 22.0 ],
					"text": "sel 1"
				}
			},
			{
				"box": {
					"id": "obj-65",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 20.0, 615.0, 47.0, 22.0 ],
					"text": "0 150"
				}
			},
			{
				"box": {
					"id": "obj-66",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "int", "int" ],
					"patching_rect": [ 140.0, 555.0, 82.0, 22.0 ],
					"text": "unpack 0 0"
				}
			},
			{
				"box": {
					"id": "obj-67",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "int", "int" ],
					"patching_rect": [ 270.0, 585.0, 47.0, 22.0 ],
					"text": "t i i"
				}
			},
			{
				"box": {
					"id": "obj-68",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 270.0, 615.0, 40.0, 22.0 ],
					"text": "mtof"
				}
			},
			{
				"box": {
					"id": "obj-69",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "signal" ],
					"patching_rect": [ 270.0, 645.0, 54.0, 22.0 ],
					"text": "cycle~"
				}
			},
			{
				"box": {
					"id": "obj-70",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "float" ],
					"patching_rect": [ 140.0, 585.0, 54.0, 22.0 ],
					"text": "/ 127."
				}
			},
			{
				"box": {
					"id": "obj-71",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "float" ],
					"patching_rect": [ 140.0, 615.0, 47.0, 22.0 ],
					"text": "* 0.3"
				}
			},
			{
				"box": {
					"id": "obj-72",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "float", "float" ],
					"patching_rect": [ 140.0, 645.0, 47.0, 22.0 ],
					"text": "t f f"
				}
			},
			{
				"box": {
					"id": "obj-73",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "float" ],
					"patching_rect": [ 180.0, 675.0, 47.0, 22.0 ],
					"text": "* 0.5"
				}
			},
			{
				"box": {
					"id": "obj-74",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 140.0, 705.0, 82.0, 22.0 ],
					"text": "pack 0. 0."
				}
			},
			{
				"box": {
					"id": "obj-75",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 140.0, 735.0, 89.0, 22.0 ],
					"text": "$1 5 $2 300"
				}
			},
			{
				"box": {
					"id": "obj-76",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 490.0, 555.0, 40.0, 22.0 ],
					"text": "0 20"
				}
			},
			{
				"box": {
					"id": "obj-77",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 540.0, 555.0, 100.0, 20.0 ],
					"text": "panic",
					"linecount": 1
				}
			},
			{
				"box": {
					"id": "obj-78",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [ "signal", "bang" ],
					"patching_rect": [ 140.0, 775.0, 47.0, 22.0 ],
					"text": "line~"
				}
			},
			{
				"box": {
					"id": "obj-79",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "signal" ],
					"patching_rect": [ 270.0, 805.0, 30.0, 22.0 ],
					"text": "*~"
				}
			},
			{
				"box": {
					"id": "obj-80",
					"maxclass": "ezdac~",
					"numinlets": 2,
					"numoutlets": 0,
					"patching_rect": [ 270.0, 840.0, 45.0, 45.0 ]
				}
			}
		],
		"lines": [
			{
				"patchline": {
					"source": [ "obj-3", 0 ],
					"destination": [ "obj-4", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-4", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-5", 0 ],
					"destination": [ "obj-6", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-6", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-7", 0 ],
					"destination": [ "obj-8", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-8", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-9", 0 ],
					"destination": [ "obj-10", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-10", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-11", 0 ],
					"destination": [ "obj-12", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-12", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-13", 0 ],
					"destination": [ "obj-15", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-15", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 0 ],
					"destination": [ "obj-17", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-17", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-18", 0 ],
					"destination": [ "obj-19", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-19", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-20", 0 ],
					"destination": [ "obj-21", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-21", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-25", 0 ],
					"destination": [ "obj-26", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 7 ],
					"destination": [ "obj-27", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 0 ],
					"destination": [ "obj-28", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-28", 0 ],
					"destination": [ "obj-29", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-29", 0 ],
					"destination": [ "obj-30", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-29", 1 ],
					"destination": [ "obj-31", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-29", 2 ],
					"destination": [ "obj-32", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 1 ],
					"destination": [ "obj-34", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-34", 0 ],
					"destination": [ "obj-35", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-35", 0 ],
					"destination": [ "obj-36", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-35", 1 ],
					"destination": [ "obj-37", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-35", 2 ],
					"destination": [ "obj-38", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-35", 3 ],
					"destination": [ "obj-39", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-35", 2 ],
					"destination": [ "obj-41", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-41", 0 ],
					"destination": [ "obj-42", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-44", 0 ],
					"destination": [ "obj-46", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-34", 1 ],
					"destination": [ "obj-46", 1 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-46", 0 ],
					"destination": [ "obj-47", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-47", 0 ],
					"destination": [ "obj-48", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-48", 0 ],
					"destination": [ "obj-22", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 3 ],
					"destination": [ "obj-49", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 4 ],
					"destination": [ "obj-51", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 5 ],
					"destination": [ "obj-53", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 6 ],
					"destination": [ "obj-55", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-28", 1 ],
					"destination": [ "obj-59", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-59", 0 ],
					"destination": [ "obj-60", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-60", 0 ],
					"destination": [ "obj-61", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-61", 0 ],
					"destination": [ "obj-62", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-62", 0 ],
					"destination": [ "obj-63", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-63", 0 ],
					"destination": [ "obj-64", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-64", 0 ],
					"destination": [ "obj-65", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-65", 0 ],
					"destination": [ "obj-78", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-62", 1 ],
					"destination": [ "obj-66", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-66", 1 ],
					"destination": [ "obj-67", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-67", 1 ],
					"destination": [ "obj-63", 1 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-67", 0 ],
					"destination": [ "obj-68", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-68", 0 ],
					"destination": [ "obj-69", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-66", 0 ],
					"destination": [ "obj-70", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-70", 0 ],
					"destination": [ "obj-71", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-71", 0 ],
					"destination": [ "obj-72", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-72", 1 ],
					"destination": [ "obj-73", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-73", 0 ],
					"destination": [ "obj-74", 1 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-72", 0 ],
					"destination": [ "obj-74", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-74", 0 ],
					"destination": [ "obj-75", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-75", 0 ],
					"destination": [ "obj-78", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-26", 2 ],
					"destination": [ "obj-76", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-76", 0 ],
					"destination": [ "obj-78", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-69", 0 ],
					"destination": [ "obj-79", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-78", 0 ],
					"destination": [ "obj-79", 1 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-79", 0 ],
					"destination": [ "obj-80", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-79", 0 ],
					"destination": [ "obj-80", 1 ]
				}
			}
		]
	}
}
