"""Music: keys and scales, the generator interface, and the built-in generators."""

from livegen.music import arpeggiator as _arpeggiator  # noqa: F401  (registers its kind)
from livegen.music import improviser as _improviser  # noqa: F401  (registers melody_rnn and ngram)
