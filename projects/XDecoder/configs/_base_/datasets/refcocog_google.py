# RefCOCOg, Google split (train/val only): data/coco/refcocog/refs(google).p with the same
# instances.json and images as refcocog.py.
_base_ = './refcocog.py'
val_dataloader = dict(dataset=dict(split_file='refcocog/refs(google).p', split='val'))
test_dataloader = val_dataloader
