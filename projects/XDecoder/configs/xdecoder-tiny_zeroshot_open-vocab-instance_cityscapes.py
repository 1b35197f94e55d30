# Zero-shot open-vocabulary instance segmentation on Cityscapes val (8 thing classes).
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (published: 18.5 mask AP, the official
# evaluation's cityscapesscripts AP, here cityscapes/mAP).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/cityscapes_instance.py',
    '_base_/default_runtime.py'
]
# The official evaluation's vocabulary is the 8 thing names alone (its instance inference keeps
# the top 100 queries over them).
model = dict(task='instance', test_cfg=dict(max_per_img=100))
