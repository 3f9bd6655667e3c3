"""transformers Swin checkpoints load into ours number for number, and ours export to transformers and timm."""
import pytest
import torch

from core import create_model, load_pretrained
from core.convert.hf import from_hf, to_hf, to_timm
from helpers import randomize_

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

TOL = 1e-4
# a tiny transformers config: window 7 as swin-tiny, three stages of two blocks (plain and shifted windows)
TINY = dict(embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=7)
SIZES = [(224, 224), (200, 152)]  # 200x152: stages 50x38, 25x19, 13x10, none divisible by the window


def hf_config(**kw):
    return transformers.SwinConfig(image_size=224, patch_size=4, embed_dim=TINY["embed_dim"],
                                   depths=list(TINY["depths"]), num_heads=list(TINY["num_heads"]),
                                   window_size=TINY["window_size"], **kw)


def ours(num_classes=0, compat="official"):
    return create_model("swin_t", num_classes=num_classes, compat=compat, **TINY).eval()


@pytest.mark.parametrize("size", SIZES)
def test_image_classification(size):
    ref = randomize_(transformers.SwinForImageClassification(hf_config(num_labels=5))).eval()
    model = ours(5)
    report = load_pretrained(model, ref.state_dict())
    assert report.format == "hf" and not report.missing and not report.new_head
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y, y_ref = model(x), ref(pixel_values=x).logits
    assert y_ref.abs().mean() > 1e-2
    assert (y - y_ref).abs().max() < TOL


@pytest.mark.parametrize("size", SIZES)
def test_swin_model_features(size):
    """SwinModel (no 'swin.' prefix, no classifier): last hidden state = our features, pooled = pre-logits."""
    ref = randomize_(transformers.SwinModel(hf_config())).eval()
    model = ours()
    assert load_pretrained(model, ref.state_dict()).format == "hf"
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = ref(pixel_values=x)
        feats = model.forward_features(x)
    assert (feats.flatten(1, 2) - out.last_hidden_state).abs().max() < TOL
    assert (model(x) - out.pooler_output).abs().max() < TOL


def test_masked_image_modeling_backbone():
    """SwinForMaskedImageModeling: the encoder is taken (mask token and decoder dropped), the head stays fresh."""
    ref = randomize_(transformers.SwinForMaskedImageModeling(hf_config(encoder_stride=32))).eval()
    sd = ref.state_dict()
    assert any(k.startswith("decoder.") for k in sd) and "swin.embeddings.mask_token" in sd
    model = ours(7)
    report = load_pretrained(model, sd)
    assert report.format == "hf" and report.new_head and report.pretraining is None
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref_feats = ref.swin(pixel_values=x).last_hidden_state
        assert (model.forward_features(x).flatten(1, 2) - ref_feats).abs().max() < TOL


def test_padding_matches_official_mode_only():
    """transformers pads to the window, then rolls: our 'official' mode; 'timm' (roll, then pad) differs."""
    ref = randomize_(transformers.SwinForImageClassification(hf_config(num_labels=5))).eval()
    x = torch.randn(1, 3, 200, 152)
    with torch.no_grad():
        y_ref = ref(pixel_values=x).logits
        diffs = {}
        for compat in ("official", "timm", "timm_dynamic", "torchvision"):
            model = ours(5, compat)
            load_pretrained(model, ref.state_dict())
            diffs[compat] = (model(x) - y_ref).abs().max().item()
    assert diffs["official"] < TOL
    assert diffs["timm"] > 1e-3 and diffs["timm_dynamic"] > 1e-3


LEGACY = {"attention.q_proj.": "attention.self.query.", "attention.k_proj.": "attention.self.key.",
          "attention.v_proj.": "attention.self.value.", "attention.o_proj.": "attention.output.dense.",
          "attention.relative_position_bias.": "attention.self.", "mlp.fc1.": "intermediate.dense.",
          "mlp.fc2.": "output.dense."}


def legacy_names(sd):
    """The names of transformers 4 and of the Swin checkpoints on the hub (attention.self.query, ...)."""
    out = {}
    for k, v in sd.items():
        for new, old in LEGACY.items():
            k = k.replace("." + new, "." + old)
        out[k] = v
    return out


def test_qkv_fused_in_order_both_namings():
    """Our qkv rows are query, key, value; the hub's legacy names read the same; to_hf splits them back exactly."""
    sd = randomize_(transformers.SwinModel(hf_config())).state_dict()
    ours_sd = from_hf(sd)
    blk = "encoder.layers.1.blocks.1.attention."
    qkv = torch.cat([sd[blk + n + "_proj.weight"] for n in "qkv"])
    assert torch.equal(ours_sd["layers.1.blocks.1.attn.qkv.weight"], qkv)
    legacy = legacy_names(sd)
    assert blk + "self.query.weight" in legacy and "encoder.layers.0.blocks.0.intermediate.dense.bias" in legacy
    old = from_hf(legacy)
    assert old.keys() == ours_sd.keys() and all(torch.equal(old[k], ours_sd[k]) for k in old)
    back = to_hf(ours_sd)
    kept = {k: v for k, v in sd.items() if not k.endswith("relative_position_index")}
    assert back.keys() == kept.keys() and all(torch.equal(back[k], kept[k]) for k in kept)


def test_export_to_transformers_roundtrip():
    """A model trained here, exported with to_hf, gives the same logits in SwinForImageClassification."""
    model = randomize_(ours(5))
    ref = transformers.SwinForImageClassification(hf_config(num_labels=5)).eval()
    missing, unexpected = ref.load_state_dict(to_hf(model.state_dict()), strict=False)
    assert not unexpected and all(k.endswith("relative_position_index") for k in missing)
    x = torch.randn(2, 3, 200, 152)
    with torch.no_grad():
        assert (ref(pixel_values=x).logits - model(x)).abs().max() < TOL


@pytest.mark.parametrize("compat,timm_kw,size", [("timm", {}, (224, 224)),
                                                 ("timm_dynamic", dict(dynamic_img_size=True), (200, 152))])
def test_export_to_timm(compat, timm_kw, size, tmp_path):
    """to_timm weights load into timm through timm's own file loader and give the same logits."""
    arch = dict(embed_dim=16, num_heads=(1, 2, 4, 8))
    model = randomize_(create_model("swin_t", num_classes=10, compat=compat, **arch)).eval()
    path = tmp_path / "swin_t_timm.pth"
    torch.save(to_timm(model.state_dict()), path)
    ref = timm.create_model("swin_tiny_patch4_window7_224", num_classes=10, pretrained=True, **arch, **timm_kw,
                            pretrained_cfg_overlay=dict(file=str(path), num_classes=10)).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y_ref = ref(x)
        assert y_ref.abs().mean() > 1e-2
        assert (model(x) - y_ref).abs().max() < TOL


def test_export_refuses_3d():
    video = create_model("video_swin_t", embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=(2, 4, 4))
    with pytest.raises(ValueError, match="3D"):
        to_timm(video.state_dict())
