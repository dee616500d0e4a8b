"""The so-vits-svc 4.1 generator (SynthesizerTrn) and its parts; the discriminator lives in discriminator.py."""

from svc_train.models.synthesizer import GeneratorNoiseTensors, InferenceParts, SynthesizerTrn

__all__ = ["GeneratorNoiseTensors", "InferenceParts", "SynthesizerTrn"]
