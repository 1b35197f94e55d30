"""X-Decoder modules, registered in mmdet's registries on import.

Configs load them with ``custom_imports=dict(imports=['projects.XDecoder.xdecoder'])``.
"""
from .decoder import XDecoderTransformerDecoder
from .focalnet import FocalNet
from .pixel_decoder import XDecoderPixelDecoder
from .text_encoder import TextEncoder
from .tokenizer import CLIPTokenizer
from .xdecoder import XDecoder

__all__ = [
    'CLIPTokenizer', 'FocalNet', 'TextEncoder', 'XDecoderPixelDecoder', 'XDecoder',
    'XDecoderTransformerDecoder'
]
