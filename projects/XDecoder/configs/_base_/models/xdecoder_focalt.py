# X-Decoder focal-T: FocalNet-T (focal_dw) -> transformer-encoder FPN -> X-Decoder decoder, with
# the UniCL text encoder scoring queries against text. Released weights:
# xdecoder_focalt_best_openseg.pt, xdecoder_focalt_last_novg.pt.
model = dict(
    type='XDecoder',
    task='semantic',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_value=0),
    backbone=dict(
        type='FocalNet',
        embed_dim=96,
        depths=(2, 2, 6, 2),
        focal_levels=(3, 3, 3, 3),
        focal_windows=(3, 3, 3, 3),
        block_type='focal_dw',
        drop_path_rate=0.3),
    pixel_decoder=dict(
        type='XDecoderPixelDecoder',
        in_channels=(96, 192, 384, 768),
        conv_dim=512,
        mask_dim=512,
        num_encoder_layers=6),
    decoder=dict(
        type='XDecoderTransformerDecoder',
        hidden_dim=512,
        dim_proj=512,
        num_queries=101,
        num_layers=9),
    text_encoder=dict(type='TextEncoder'),
    backbone_dim=768,
    dim_proj=512)
