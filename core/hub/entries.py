"""The released weights, as registry entries. Sources (facts, not code):

- microsoft/Swin-Transformer MODELHUB.md (Swin, Swin V2, Swin-MLP, SimMIM V2 data-scaling) and configs/;
- SwinTransformer/Video-Swin-Transformer README.md and configs/recognition/swin/;
- SwinTransformer/Transformer-SSL get_started.md (MoBY; the README's GitHub links of the two rows are swapped,
  the file names are what counts); microsoft/SimMIM README.md (SimMIM on Swin V1, Google Drive only);
- torchvision 0.29 ``models/swin_transformer.py`` and ``models/video/swin_transformer.py`` weight enums (url with
  the SHA-256 prefix, acc@1 / acc@5, crop and resize sizes);
- timm 1.0 pretrained cfgs: its Swin / Swin V2 weights are these official files re-hosted on the Hugging Face hub
  (``hf_hub_id``); its other Swin-like weights (swin_s3, swinv2_cr) are other architectures.
"""
from __future__ import annotations

from typing import Any

from .registry import Pretrained, register_pretrained

GH = "https://github.com/SwinTransformer/storage/releases/download"
TV = "https://download.pytorch.org/models"
SWIN = "microsoft/Swin-Transformer"
VIDEO = "SwinTransformer/Video-Swin-Transformer"
MOBY = "SwinTransformer/Transformer-SSL"
SIMMIM = "microsoft/SimMIM"
TORCHVISION = "torchvision"
IN1K = "ImageNet-1K val"
V2_22K_WINDOWS = (12, 12, 12, 6)  # the 192 px window-12 pretraining's windows, per stage (official configs)
SIZES = {"t": "tiny", "s": "small", "b": "base", "l": "large"}
_L = dict(embed_dim=192, num_heads=(6, 12, 24, 48))  # Swin(V2)-L on the base builder's depths


def _add(name: str, model: str, family: str, source: str, **kw: Any) -> None:
    register_pretrained(Pretrained(name=name, model=model, family=family, source=source, **kw))


def _swin() -> None:
    """Swin V1: ImageNet-1K, ImageNet-22K and 22K -> 1K at 224 and 384 (and Swin-T/C24 from the MLP table)."""
    rows = [  # arch, model, release, file stem, 1K top-1/5, 22K->1K top-1/5 (None: not released)
        ("swin_t", "swin_t", "v1.0.8", "swin_tiny_patch4_window7_224", (81.2, 95.5), (80.9, 96.0)),
        ("swin_s", "swin_s", "v1.0.8", "swin_small_patch4_window7_224", (83.2, 96.2), (83.2, 97.0)),
        ("swin_b", "swin_b", "v1.0.0", "swin_base_patch4_window7_224", (83.5, 96.5), (85.2, 97.5)),
        ("swin_b_384", "swin_b_384", "v1.0.0", "swin_base_patch4_window12_384", (84.5, 97.0), (86.4, 98.0)),
        ("swin_l", "swin_l", "v1.0.0", "swin_large_patch4_window7_224", None, (86.3, 97.9)),
        ("swin_l_384", "swin_l_384", "v1.0.0", "swin_large_patch4_window12_384", None, (87.3, 98.2)),
    ]
    for arch, model, rel22, stem, acc1k, acc22k in rows:
        size = 384 if stem.endswith("384") else 224
        common = dict(input_size=(3, size, size))
        if acc1k:
            _add(f"{arch}.ms_in1k", model, "Swin", SWIN, url=f"{GH}/v1.0.0/{stem}.pth",
                 hf_hub_id=f"timm/{stem}.ms_in1k", top1=acc1k[0], top5=acc1k[1], metric=IN1K, **common)
        _add(f"{arch}.ms_in22k", model, "Swin", SWIN, url=f"{GH}/{rel22}/{stem}_22k.pth",
             hf_hub_id=f"timm/{stem}.ms_in22k", num_classes=21841, labels="imagenet-22k", **common)
        ft = "_22kto1k_finetune" if rel22 == "v1.0.8" else "_22kto1k"
        _add(f"{arch}.ms_in22k_ft_in1k", model, "Swin", SWIN, url=f"{GH}/{rel22}/{stem}{ft}.pth",
             hf_hub_id=f"timm/{stem}.ms_in22k_ft_in1k", top1=acc22k[0], top5=acc22k[1], metric=IN1K,
             notes="ImageNet-22K pretraining, fine-tuned on ImageNet-1K", **common)
    _add("swin_t_c24.ms_in1k", "swin_t", "Swin", SWIN, url=f"{GH}/v1.0.5/swin_tiny_c24_patch4_window8_256.pth",
         overrides=dict(num_heads=(4, 8, 16, 32), window_size=8), input_size=(3, 256, 256), top1=81.6, top5=95.7,
         metric=IN1K, notes="Swin-T with 24 channels per head, window 8 (the Swin-MLP paper's baseline)")


def _swin_v2() -> None:
    """Swin V2: ImageNet-1K at 256 (windows 8 and 16), ImageNet-22K at 192 and its 256 / 384 fine-tunings."""
    acc = {("t", 8): (81.8, 95.9), ("s", 8): (83.7, 96.6), ("b", 8): (84.2, 96.9),
           ("t", 16): (82.8, 96.2), ("s", 16): (84.1, 96.8), ("b", 16): (84.6, 97.0)}
    for (s, w), (t1, t5) in acc.items():
        arch = f"swin_v2_{s}" + ("_w16" if w == 16 else "")
        stem = f"swinv2_{SIZES[s]}_patch4_window{w}_256"
        _add(f"{arch}.ms_in1k", arch, "Swin V2", SWIN, url=f"{GH}/v2.0.0/{stem}.pth",
             hf_hub_id=f"timm/swinv2_{SIZES[s]}_window{w}_256.ms_in1k", input_size=(3, 256, 256),
             top1=t1, top5=t5, metric=IN1K)
    ft = {("b", 16): (86.2, 97.9), ("b", 24): (87.1, 98.2), ("l", 16): (86.9, 98.0), ("l", 24): (87.6, 98.3)}
    for s in ("b", "l"):
        size_kw = _L if s == "l" else {}
        _add(f"swin_v2_{s}_w12.ms_in22k", "swin_v2_b", "Swin V2", SWIN,
             url=f"{GH}/v2.0.0/swinv2_{SIZES[s]}_patch4_window12_192_22k.pth",
             hf_hub_id=f"timm/swinv2_{SIZES[s]}_window12_192.ms_in22k", overrides=dict(size_kw, window_size=12),
             input_size=(3, 192, 192), num_classes=21841, labels="imagenet-22k")
        for w, px in ((16, 256), (24, 384)):
            t1, t5 = ft[(s, w)]
            _add(f"swin_v2_{s}_w{w}.ms_in22k_ft_in1k", "swin_v2_b", "Swin V2", SWIN,
                 url=f"{GH}/v2.0.0/swinv2_{SIZES[s]}_patch4_window12to{w}_192to{px}_22kto1k_ft.pth",
                 hf_hub_id=f"timm/swinv2_{SIZES[s]}_window12to{w}_192to{px}.ms_in22k_ft_in1k",
                 overrides=dict(size_kw, window_size=w, pretrained_window_sizes=V2_22K_WINDOWS),
                 input_size=(3, px, px), top1=t1, top5=t5, metric=IN1K,
                 notes="ImageNet-22K pretraining at 192 px (window 12), fine-tuned on ImageNet-1K")


def _swin_mlp() -> None:
    """Swin-MLP: the four ImageNet-1K models."""
    for arch, stem, px, (t1, t5) in (
            ("swin_mlp_t_c24", "swin_mlp_tiny_c24_patch4_window8_256", 256, (79.4, 94.6)),
            ("swin_mlp_t_c12", "swin_mlp_tiny_c12_patch4_window8_256", 256, (79.6, 94.7)),
            ("swin_mlp_t_c6", "swin_mlp_tiny_c6_patch4_window8_256", 256, (79.7, 94.9)),
            ("swin_mlp_b", "swin_mlp_base_patch4_window7_224", 224, (81.3, 95.3))):
        _add(f"{arch}.ms_in1k", arch, "Swin-MLP", SWIN, url=f"{GH}/v1.0.5/{stem}.pth", input_size=(3, px, px),
             top1=t1, top5=t5, metric=IN1K)


def _torchvision() -> None:
    """torchvision's Swin, Swin V2 and Swin3D weights (file names carry the SHA-256 prefix)."""
    for arch, family, file, px, resize, t1, t5 in (
            ("swin_t", "Swin", "swin_t-704ceda3.pth", 224, 232, 81.474, 95.776),
            ("swin_s", "Swin", "swin_s-5e29d889.pth", 224, 246, 83.196, 96.360),
            ("swin_b", "Swin", "swin_b-68c6b09e.pth", 224, 238, 83.582, 96.640),
            ("swin_v2_t", "Swin V2", "swin_v2_t-b137f0e2.pth", 256, 260, 82.072, 96.132),
            ("swin_v2_s", "Swin V2", "swin_v2_s-637d8ceb.pth", 256, 260, 83.712, 96.816),
            ("swin_v2_b", "Swin V2", "swin_v2_b-781e5279.pth", 256, 272, 84.112, 96.864)):
        _add(f"{arch}.tv_in1k", arch, family, TORCHVISION, url=f"{TV}/{file}", overrides=dict(compat="torchvision"),
             input_size=(3, px, px), resize_size=resize, top1=t1, top5=t5, metric=IN1K,
             notes="torchvision's own ImageNet-1K training")
    for arch, tag, file, t1, t5 in (
            ("video_swin_t", "tv_in1k_ft_k400", "swin3d_t-7615ae03.pth", 77.715, 93.519),
            ("video_swin_s", "tv_in1k_ft_k400", "swin3d_s-da41c237.pth", 79.521, 94.158),
            ("video_swin_b", "tv_in1k_ft_k400", "swin3d_b_1k-24f7c7c6.pth", 79.427, 94.386),
            ("video_swin_b", "tv_in22k_ft_k400", "swin3d_b_22k-7c6ae6fa.pth", 81.643, 95.574)):
        _add(f"{arch}.{tag}", arch, "Video Swin", TORCHVISION, url=f"{TV}/{file}",
             overrides=dict(compat="torchvision"), num_classes=400, labels="kinetics-400",
             input_size=(3, 32, 224, 224), frame_interval=2, test_views="4x3", resize_size=256, top1=t1, top5=t5,
             metric="Kinetics-400 val, torchvision's video-level estimate (15 fps, 12 clips of 32 frames)",
             notes="the official weights ported by torchvision")


def _video_swin() -> None:
    """Video Swin: Kinetics-400 (ImageNet-1K / 22K init), Kinetics-600, Something-Something V2."""
    k = dict(input_size=(3, 32, 224, 224), frame_interval=2, test_views="4x3", family="Video Swin", source=VIDEO)
    k400 = dict(k, num_classes=400, labels="kinetics-400", metric="Kinetics-400 val, 4x3 views")
    for arch, stem, t1, t5 in (("video_swin_t", "swin_tiny", 78.8, 93.6), ("video_swin_s", "swin_small", 80.6, 94.5),
                               ("video_swin_b", "swin_base", 80.6, 94.6)):
        _add(f"{arch}.ms_in1k_ft_k400", arch, url=f"{GH}/v1.0.4/{stem}_patch244_window877_kinetics400_1k.pth",
             top1=t1, top5=t5, **k400)
    base = f"{GH}/v1.0.4/swin_base_patch244"
    _add("video_swin_b.ms_in22k_ft_k400", "video_swin_b", url=f"{base}_window877_kinetics400_22k.pth", top1=82.7,
         top5=95.5, **k400)
    _add("video_swin_b.ms_in22k_ft_k600", "video_swin_b", url=f"{base}_window877_kinetics600_22k.pth", top1=84.0,
         top5=96.5, **dict(k, num_classes=600, labels="kinetics-600", metric="Kinetics-600 val, 4x3 views"))
    w16 = dict(window_size=(16, 7, 7))
    _add("video_swin_b_w16.ms_in22k_ft_k400", "video_swin_b",
         url=f"{base}_window1677_kinetics400_22k.pth", overrides=w16,
         notes="window 16x7x7; the initialisation of the SSv2 model (no accuracy published)", **k400)
    _add("video_swin_b_w16.ms_in22k_ft_k400_ft_ssv2", "video_swin_b",
         url=f"{base}_window1677_sthv2.pth", overrides=w16, top1=69.6, top5=92.7,
         **dict(k, num_classes=174, labels="something-something-v2", test_views="1x3",
                metric="Something-Something V2 val, 1x3 views (32 frames sampled uniformly over the video)"))


def _moby() -> None:
    """MoBY on Swin-T (300 epochs, ImageNet-1K): the pretrained backbone and its linear probe."""
    _add("swin_t.moby_in1k_300ep", "swin_t", "MoBY", MOBY, url=f"{GH}/v1.0.3/moby_swin_t_300ep_pretrained.pth",
         num_classes=0, labels=None, top1=75.3, metric="ImageNet-1K linear probe",
         notes="MoBY checkpoint: the online encoder is taken")
    _add("swin_t.moby_in1k_300ep_linear", "swin_t", "MoBY", MOBY, url=f"{GH}/v1.0.3/moby_swin_t_300ep_linear.pth",
         top1=75.3, metric="ImageNet-1K linear probe", notes="frozen MoBY backbone with its linear classifier")


def _simmim() -> None:
    """SimMIM: Swin V1 on ImageNet-1K (Google Drive), and the data-scaling Swin V2 series (Hugging Face hub)."""
    def drive(file_id: str) -> str:
        return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"
    for arch, model, over, stem, fid, t1, metric in (
            ("swin_b_w6", "swin_b", dict(window_size=6), "pretrain__swin_base__img192_window6__100ep",
             "1Wcbr66JL26FF30Kip9fZa_0lXrDAKP-d", 83.5, "ImageNet-1K, fine-tuned at 224 px"),
            ("swin_b_w6", "swin_b", dict(window_size=6), "pretrain__swin_base__img192_window6__800ep",
             "15zENvGjHlM71uKQ3d2FbljWPubtrPtjl", 84.0, "ImageNet-1K, fine-tuned at 224 px"),
            ("swin_l_w12", "swin_l", dict(window_size=12), "pretrain__swin_large__img192_window12__800ep",
             "1qDxrTl2YUDB0505_4QrU5LU2R1kKmcBP", 85.4, "ImageNet-1K, fine-tuned at 224 px (window 14)")):
        epochs = stem.rsplit("__", 1)[1]
        _add(f"{arch}.simmim_in1k_{epochs}", model, "SimMIM", SIMMIM, url=drive(fid), manual=True,
             file=f"simmim_{stem}.pth", overrides=over, num_classes=0, labels=None, input_size=(3, 192, 192),
             top1=t1, metric=metric, notes="SimMIM checkpoint: the encoder is taken; Google Drive only")
    for arch, model, over, stem, px, fid, t1 in (
            ("swin_b_w6", "swin_b", dict(window_size=6), "finetune__swin_base__img192_window6__100ep", 192,
             "1RsgHfjB4B1ZYblXEQVT-FPX3WSvBrxcs", 82.8),
            ("swin_b", "swin_b", {}, "finetune__swin_base__img224_window7__100ep", 224,
             "1mb43BkW56F5smwiX-g7QUUD7f1Rftq8u", 83.5),
            ("swin_b", "swin_b", {}, "finetune__swin_base__img224_window7__800ep", 224,
             "1xEKyfMTsdh6TfnYhk5vbw0Yz7a-viZ0w", 84.0),
            ("swin_l_w14", "swin_l", dict(window_size=14), "finetune__swin_large__img224_window14__800ep", 224,
             "1mf0ZpXttEvFsH87Www4oQ-t8Kwr0x485", 85.4)):
        epochs = stem.rsplit("__", 1)[1]
        _add(f"{arch}.simmim_in1k_{epochs}_ft_in1k", model, "SimMIM", SIMMIM, url=drive(fid), manual=True,
             file=f"simmim_{stem}.pth", overrides=over, input_size=(3, px, px), top1=t1, metric=IN1K,
             notes="SimMIM pretraining, fine-tuned on ImageNet-1K; Google Drive only")
    # On Data Scaling in Masked Image Modeling (MODELHUB.md): size, data, iterations (k), validation loss,
    # ImageNet-1K top-1 after fine-tuning
    rows = """
    small 1kper10 125 0.4820 82.69 | small 1kper10 250 0.4961 83.11 | small 1kper10 500 0.5115 83.17
    small 1kper20 125 0.4751 83.05 | small 1kper20 250 0.4722 83.56 | small 1kper20 500 0.4734 83.75
    small 1kper50 125 0.4732 83.04 | small 1kper50 250 0.4681 83.67 | small 1kper50 500 0.4646 83.96
    small 1k 125 0.4728 82.92 | small 1k 250 0.4674 83.66 | small 1k 500 0.4641 84.08
    base 1kper10 125 0.4822 83.33 | base 1kper10 250 0.4997 83.60 | base 1kper10 500 0.5112 83.41
    base 1kper20 125 0.4703 83.86 | base 1kper20 250 0.4679 84.37 | base 1kper20 500 0.4711 84.61
    base 1kper50 125 0.4683 84.04 | base 1kper50 250 0.4633 84.57 | base 1kper50 500 0.4598 84.95
    base 1k 125 0.4680 84.13 | base 1k 250 0.4626 84.65 | base 1k 500 0.4588 85.04
    base 22k 125 0.4695 84.11 | base 22k 250 0.4649 84.57 | base 22k 500 0.4614 85.11
    large 1kper10 125 0.4995 83.69 | large 1kper10 250 0.5140 83.66 | large 1kper10 500 0.5150 83.50
    large 1kper20 125 0.4675 84.38 | large 1kper20 250 0.4746 84.71 | large 1kper20 500 0.4960 84.59
    large 1kper50 125 0.4622 84.78 | large 1kper50 250 0.4566 85.38 | large 1kper50 500 0.4530 85.80
    large 1k 125 0.4611 84.98 | large 1k 250 0.4552 85.45 | large 1k 500 0.4507 85.91
    large 22k 125 0.4649 84.61 | large 22k 250 0.4586 85.39 | large 22k 500 0.4536 85.81
    """
    short = {v: k for k, v in SIZES.items()}
    for row in rows.replace("\n", "|").split("|"):
        if not row.strip():
            continue
        size, data, iters, loss, t1 = row.split()
        s = short[size]
        model = {"s": "swin_v2_s", "b": "swin_v2_b", "l": "swin_v2_b"}[s]
        over = dict(_L if s == "l" else {}, window_size=12)
        part = f"in1k_{data[5:]}pct" if "per" in data else f"in{data}"
        share = f"{data[5:]} % of ImageNet-1K" if "per" in data else {"1k": "ImageNet-1K", "22k": "ImageNet-22K"}[data]
        _add(f"swin_v2_{s}_w12.simmim_{part}_{iters}k", model, "SimMIM", SWIN, hf_hub_id="zdaxie/SimMIM",
             hf_filename=f"simmim_swinv2_pretrain_models/swinv2_{size}_{data}_{iters}k.pth", overrides=over,
             num_classes=0, labels=None, input_size=(3, 192, 192), top1=float(t1),
             metric=f"ImageNet-1K after fine-tuning; pretraining validation loss {loss}",
             notes=f"SimMIM on {share}, {iters}k iterations (On Data Scaling in Masked Image Modeling)")


for _family in (_swin, _swin_v2, _swin_mlp, _video_swin, _moby, _simmim, _torchvision):  # official first: the defaults
    _family()
