# X-Decoder Focal-L: the focal-T model with FocalNet-L (`focal` blocks, 4 focal levels) and 201
# latent queries. Released weights: xdecoder_focall_last.pt.
_base_ = './xdecoder_focalt.py'
model = dict(
    backbone=dict(
        embed_dim=192,
        depths=(2, 2, 18, 2),
        focal_levels=(4, 4, 4, 4),
        focal_windows=(3, 3, 3, 3),
        block_type='focal'),
    pixel_decoder=dict(in_channels=(192, 384, 768, 1536)),
    decoder=dict(num_queries=201),
    backbone_dim=1536)
