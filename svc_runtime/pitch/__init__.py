"""Pitch (F0) estimation on the runtime side: numpy decoders of the neural pitch
networks' outputs (``decode``) and the classic methods (``classic``)."""
