# The name the original README uses for ADE20K-150 zero-shot semantic segmentation:
#   ./tools/dist_test.sh projects/XDecoder/configs/xdecoder-tiny_zeroshot_semseg.py \
#       xdecoder_focalt_best_openseg.pt 8
_base_ = './xdecoder-tiny_zeroshot_open-vocab-semseg_ade20k.py'
