# RefCOCO (UNC split) referring segmentation, laid out as mmdetection's dataset docs say:
#   data/coco/train2014/COCO_train2014_*.jpg
#   data/coco/refcoco/instances.json  data/coco/refcoco/refs(unc).p
# refcoco+.py, refcocog.py and refcocog_google.py change only the annotation files and split.
_base_ = './eval_loader.py'
readme_section = 'RefCOCO / RefCOCO+ / RefCOCOg'  # README.md, "Datasets": download and layout
dataset_type = 'RefCocoDataset'
data_root = 'data/coco/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    # The official evaluation: short side 512, long side at most 1024, PIL bilinear.
    dict(type='ResizeShortestEdge', scale=512, max_size=1024, backend='pillow',
         interpolation='bilinear'),
    # After the resize on purpose: masks are decoded at the original size, where the
    # predictions are.
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_mask=True),
    # RefSegMetric reads the ground truth from the sample's 'gt_masks' meta field; the model
    # reads the phrases from 'text' (one per referred object, in the order of gt_masks).
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'gt_masks',
                    'text'))
]

val_dataloader = dict(
    # Grounding needs one image per forward pass (all its phrases go through together).
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014/'),
        ann_file='refcoco/instances.json',
        split_file='refcoco/refs(unc).p',
        split='val',  # or 'testA', 'testB'
        # select_first = the official evaluation (first sentence of each object); 'original'
        # queries every sentence, 'concat' joins an object's sentences into one.
        text_mode='select_first',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='RefSegMetric', metric=['cIoU', 'mIoU'])
test_evaluator = val_evaluator
