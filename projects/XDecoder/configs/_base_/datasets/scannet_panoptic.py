# ScanNet 25k-frame val panoptic segmentation, the 20 ScanNet benchmark classes (18 things; wall
# and floor are stuff), category ids = NYU40 ids, PQ with mmdet's CocoPanopticMetric (README
# "Datasets": ScanNet). The official evaluation reads the COCO panoptic ground truth that
# ScanNet's BenchmarkScripts/convert2panoptic.py makes from the download's instance PNGs; the
# same, for the frames of the val scenes and with images named as their ground truth (mmdet
# finds a ground-truth PNG by its image's file name, and frame names repeat across scenes), by
#   python tools/dataset_converters/scannet_panoptic.py scannet_frames_25k/ \
#       scannetv2_val.txt data/scannet_frames_25k
#   data/scannet_frames_25k/scannet_panoptic_val.json
#   data/scannet_frames_25k/scannet_panoptic_val/<scene>__<frame>.png
#   data/scannet_frames_25k/scannet_panoptic_val_images/<scene>__<frame>.jpg
# The official ScanNet panoptic test scale: short side 512 (PIL bicubic; ScanNet's 1296x968
# frames stay under the long side cap of the other ScanNet evaluations, 1024).
_base_ = './eval_loader.py'
readme_section = 'ScanNet'  # README.md, "Datasets": download and layout
data_root = 'data/scannet_frames_25k/'
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=512, max_size=1024, backend='pillow',
         interpolation='bicubic'),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'stuff_text'))
]
# The official names (ScanNet's); things first, then stuff, each in category id order.
scannet_panoptic_vocabulary = dict(
    thing_classes=('cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
                   'picture', 'counter', 'desk', 'curtain', 'refrigerator', 'shower curtain',
                   'toilet', 'sink', 'bathtub', 'otherfurniture'),
    stuff_classes=('wall', 'floor'))
scannet_panoptic_vocabulary['classes'] = (scannet_panoptic_vocabulary['thing_classes'] +
                                          scannet_panoptic_vocabulary['stuff_classes'])
val_dataloader = dict(
    dataset=dict(
        type='CocoPanopticDataset',
        data_root=data_root,
        ann_file='scannet_panoptic_val.json',
        data_prefix=dict(img='scannet_panoptic_val_images/', seg='scannet_panoptic_val/'),
        metainfo=scannet_panoptic_vocabulary,
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# With another data_root, also point ann_file and seg_prefix here at the same files.
val_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=data_root + 'scannet_panoptic_val.json',
    seg_prefix=data_root + 'scannet_panoptic_val/')
test_evaluator = val_evaluator
