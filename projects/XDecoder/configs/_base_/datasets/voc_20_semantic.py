# PASCAL VOC 2012 val without its background class (VOC-20): the same folders as VOC-21, with
# the 20 object classes as a subset of mmseg's PascalVOCDataset classes, so that mmseg maps
# background pixels to 255 (ignored) and object k to k - 1.
_base_ = './voc_21_semantic.py'
val_dataloader = dict(
    dataset=dict(
        metainfo=dict(classes=(
            'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
            'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
            'train', 'tvmonitor'))))
test_dataloader = val_dataloader
