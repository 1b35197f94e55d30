# Referring captioning on RefCOCOg (UMD val) with X-Decoder focal-T: an image's referring
# expressions are grounded (jointly, as in referring segmentation), then the image is captioned
# with the caption queries' cross-attention restricted to the first expression's mask.
# Data: data/coco/train2014/*.jpg, data/coco/refcocog/{instances.json,refs(umd).p}.
# Checkpoint: xdecoder_focalt_last_novg.pt.
#
# There is no reference caption of a grounded region to score against, so the metric is
# RefSegMetric on the grounding masks the captions are conditioned on; the captions themselves
# come with --out results.pkl (each result's 'pred_caption', next to 'text' and 'pred_instances').
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/refcocog.py',
    '_base_/default_runtime.py'
]
model = dict(task='ref-caption')
# One pass serves both steps, at the captioning scale (short side 224, as the official demo
# captions; its grounding step ran at 512).
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
        dict(type='ResizeShortestEdge', scale=224, backend='pillow', interpolation='bilinear'),
        dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_mask=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                        'gt_masks', 'text'))
    ]))
val_dataloader = test_dataloader
