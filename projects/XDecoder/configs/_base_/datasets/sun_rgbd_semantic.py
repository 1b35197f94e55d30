# SUN RGB-D test split, 37 classes (the official X-Decoder names; README "Datasets": SUN RGB-D),
# the official evaluation's layout, made by
#   python tools/dataset_converters/sun_rgbd.py SUNRGBD-test_images/ \
#       sunrgbd_train_test_labels/ data/sun_rgbd
#   data/sun_rgbd/image/test/*.jpg
#   data/sun_rgbd/label37/test/*.png   (0 = unlabelled, ignored; k = class k - 1)
_base_ = './mmseg_semantic.py'
readme_section = 'SUN RGB-D'  # README.md, "Datasets": download and layout
# The official SUN RGB-D / ScanNet test scale: short side 512, long side <= 1024.
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=512, max_size=1024, backend='pillow',
         interpolation='bilinear'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs')
]
val_dataloader = dict(
    dataset=dict(
        type='SUNRGBDDataset',
        data_root='data/sun_rgbd/',
        data_prefix=dict(img_path='image/test', seg_map_path='label37/test'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
