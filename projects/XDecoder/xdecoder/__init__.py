"""X-Decoder modules, registered in mmdet's registries on import.

Configs load them with ``custom_imports=dict(imports=['projects.XDecoder.xdecoder'])``.
"""
from . import compat  # noqa: F401  (numpy.in1d for cityscapesscripts)
from .batch_sampler import SameSizeBatchSampler
from .benchmark_datasets import (ADE20KFullDataset, DatasetVocabularyHook, LoadSegAnnotations16,
                                 PascalContext459Dataset, ScanNet40SegDataset, ScanNetSegDataset,
                                 SUNRGBDDataset)
from .caption_metric import COCOCaptionEvalMetric
from .decoder import XDecoderTransformerDecoder
from .focalnet import FocalNet
from .hooks import RankZeroLoggerHook, TrainingClassNamesHook
from .inferencer import XDecoderInferencer
from .joint_training import JointDataPreprocessor, JointTrainLoop
from .pixel_decoder import XDecoderPixelDecoder
from .retrieval_metric import RetrievalRecallMetric
from .segmentation_loss import XDecoderSegLoss
from .text_encoder import TextEncoder
from .tokenizer import CLIPTokenizer
from .vl_datasets import CocoPanopticVLDataset, ImageTextDataset
from .vl_losses import XDecoderCaptionLoss, XDecoderGroundingLoss, XDecoderRetrievalLoss
from .vl_transforms import LoadGroundingAnnotations, PackXDecoderInputs
from .xdecoder import XDecoder

__all__ = [
    'CLIPTokenizer', 'FocalNet', 'TextEncoder', 'XDecoderPixelDecoder', 'XDecoder',
    'XDecoderInferencer', 'SameSizeBatchSampler', 'JointDataPreprocessor', 'JointTrainLoop',
    'TrainingClassNamesHook', 'RankZeroLoggerHook',
    'XDecoderTransformerDecoder', 'COCOCaptionEvalMetric', 'RetrievalRecallMetric',
    'XDecoderSegLoss', 'XDecoderGroundingLoss', 'XDecoderCaptionLoss', 'XDecoderRetrievalLoss',
    'ADE20KFullDataset', 'PascalContext459Dataset', 'SUNRGBDDataset', 'ScanNetSegDataset',
    'ScanNet40SegDataset', 'LoadSegAnnotations16', 'DatasetVocabularyHook', 'CocoPanopticVLDataset',
    'ImageTextDataset', 'LoadGroundingAnnotations', 'PackXDecoderInputs'
]
