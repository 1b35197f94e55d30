# ScanNet 25k-frame val, the 20 benchmark classes (the official X-Decoder names; README
# "Datasets": ScanNet), the official evaluation's layout, made from scannet_frames_25k by
#   python tools/dataset_converters/scannet.py scannet_frames_25k/ scannetv2_val.txt \
#       data/scannet_frames_25k
#   data/scannet_frames_25k/images/<scene>/color/*.jpg
#   data/scannet_frames_25k/images/<scene>/label21/*.png   (0 = unlabelled; k = class k - 1)
#   data/scannet_frames_25k/images/<scene>/label41/*.png   (NYU40 ids, for ScanNet-40)
#   data/scannet_frames_25k/meta/val.txt                   (<scene>/color/<frame>.jpg per line)
# Test scale of the official SUN RGB-D / ScanNet evaluation, as SUN RGB-D's.
_base_ = './sun_rgbd_semantic.py'
readme_section = 'ScanNet'  # README.md, "Datasets": download and layout
val_dataloader = dict(
    dataset=dict(
        type='ScanNetSegDataset',
        data_root='data/scannet_frames_25k/',
        data_prefix=dict(_delete_=True, img_path='images'),
        ann_file='meta/val.txt'))
test_dataloader = val_dataloader
