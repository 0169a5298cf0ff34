"""Reload a patch while the performer edits it, without ever stopping the show.

The watcher polls (no inotify dependency; works on every OS and network drive). Each poll
stats the *path* (editors that save by writing a new file and renaming it replace the
inode), and reads the file when its mtime/size/inode changed, plus about once a second
anyway (coarse mtimes). A content hash decides whether anything really changed.

A valid new patch is delivered at once. A broken one (syntax error, a file missing
between an editor's delete and rename, a half-written file) is only reported when it is
still there on the next poll, once per distinct problem, and the last good patch stays in
force: ``on_change`` only ever sees valid patches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from typing import Callable

from livegen.patch.loader import PatchError, _decode, parse_patch
from livegen.patch.schema import Patch

log = logging.getLogger("livegen.patch")

_Signature = tuple[int, int, int]  # mtime_ns, size, inode


class PatchWatcher:
    """Poll a patch file and call ``on_change`` with each new valid version.

    ``validate`` runs extra checks on a parsed patch (e.g. ``check_params`` against the
    engine's parameters); a PatchError/ValueError from it counts as a bad edit.
    The file's content when the watcher is created (or ``initial``'s source, when given)
    is the baseline: it is not delivered again, only changes from it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[Patch], None],
        on_error: Callable[[PatchError | OSError], None],
        interval: float = 0.25,
        validate: Callable[[Patch], None] | None = None,
        *,
        initial: Patch | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.on_change = on_change
        self.on_error = on_error
        self.interval = max(0.01, float(interval))
        self.validate = validate
        self.patch: Patch | None = initial  # the last good patch
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sig: _Signature | None = None
        self._polls = 0
        self._pending: tuple[str, PatchError | OSError] | None = None  # seen once; reported if it persists
        self._reported: str | None = None  # the problem last reported (report each once)
        if initial is not None:
            self._hash: bytes | None = _digest(initial.source_text.encode("utf-8"))
        else:
            self._hash = None
            try:
                self._sig = self._stat()
                data = self._read()
                self._hash = _digest(data)
                self.patch = self._parse(data)
            except (OSError, PatchError):
                self._hash = None  # the first poll will report it
                self._sig = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Run the watcher as a task on the running loop (call from inside the loop)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = loop.create_task(self.run(), name=f"patch-watch:{self.path}")
        return self._task

    def stop(self) -> None:
        """Stop polling (the task ends at its next wake-up)."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> None:
        """Poll until stopped or cancelled."""
        self._stopping = False
        while not self._stopping:
            try:
                self.poll()
            except Exception:  # never let a watcher bug take the loop down
                log.exception("patch watcher for %s failed a poll", self.path)
            await asyncio.sleep(self.interval)

    # -- one poll --------------------------------------------------------------------
    def poll(self) -> None:
        """Check the file once; deliver a new patch or report a persistent problem."""
        self._polls += 1
        try:
            sig = self._stat()
        except OSError as e:
            self._sig = None
            self._problem(f"os:{type(e).__name__}:{e}", e)
            return
        periodic = self._polls % max(1, round(1.0 / self.interval)) == 0
        if sig == self._sig and not periodic:
            if self._pending is not None:  # nothing moved since: the problem is real
                self._problem(*self._pending)
            return
        try:
            data = self._read()
            if self._stat() != sig:  # still being written: look again next poll
                self._sig = None
                return
        except OSError as e:
            self._sig = None
            self._problem(f"os:{type(e).__name__}:{e}", e)
            return
        self._sig = sig
        digest = _digest(data)
        if digest == self._hash:
            self._pending = None  # back to the good content
            self._reported = None
            return
        try:
            patch = self._parse(data)
        except PatchError as e:
            self._problem(f"patch:{digest.hex()}:{e}", e)
            return
        self._hash = digest
        self.patch = patch
        self._pending = None
        self._reported = None
        try:
            self.on_change(patch)
        except Exception:
            log.exception("patch on_change handler failed for %s", self.path)

    def _problem(self, key: str, err: PatchError | OSError) -> None:
        if key == self._reported:
            return
        if self._pending is None or self._pending[0] != key:  # first sighting: maybe an editor mid-save
            self._pending = (key, err)
            return
        self._pending = None
        self._reported = key
        try:
            self.on_error(err)
        except Exception:
            log.exception("patch on_error handler failed for %s", self.path)

    def _stat(self) -> _Signature:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def _parse(self, data: bytes) -> Patch:
        patch = parse_patch(_decode(data, self.path), self.path)
        if self.validate is not None:
            try:
                self.validate(patch)
            except PatchError:
                raise
            except (ValueError, KeyError, TypeError) as e:
                raise PatchError(self.path, 1, "", f"{type(e).__name__}: {e}") from None
        return patch


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()
