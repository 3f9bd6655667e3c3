"""The Swin Transformer backbone and classifier, N-d (2D images, 3D video), and the paper's 2D variants."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from .block import COMPAT_MODES, SwinBlock
from .layers import ClassifierHead, PatchEmbed, PatchMerging, channels_first
from .registry import register_variants
from .stage import SwinStage
from .window import to_tuple


class SwinTransformer(nn.Module):
    """Swin Transformer for (B, C, *spatial) inputs; ``ndim`` spatial axes (2: images, 3: video).

    Stage i > 0 starts with patch merging (timm's layout), so the output of stage i is the feature map at
    stride patch * 2^i used by FPN/UPerNet.
    """

    def __init__(
            self,
            ndim: int = 2,
            in_chans: int = 3,
            num_classes: int = 1000,
            embed_dim: int = 96,
            depths: Sequence[int] = (2, 2, 6, 2),
            num_heads: Sequence[int] = (3, 6, 12, 24),
            window_size: int | Sequence[int] = 7,
            patch_size: int | Sequence[int] = 4,
            merge_factors: Sequence[int] | None = None,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.1,
            head_drop_rate: float = 0.0,
            head_time_bins: int = 1,
            patch_norm: bool = True,
            norm_layer: type[nn.Module] = nn.LayerNorm,
            compat: str = "official",
            attn_impl: str = "auto",
            grad_checkpointing: bool = False,
            block_fn: Callable[..., nn.Module] = SwinBlock,
            merge_layer: Callable[..., nn.Module] = PatchMerging,
            img_size: object = None,  # accepted for compatibility with official/timm configs, ignored
            **block_kwargs,
    ) -> None:
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        if head_time_bins != 1 and ndim != 3:
            raise ValueError(f"head_time_bins pools the time axis of video models (ndim=3); got {head_time_bins} "
                             f"with ndim={ndim}, expected 1")
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} must have the same length")
        for name, value in (("embed_dim", embed_dim), ("in_chans", in_chans), ("num_classes", num_classes + 1)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.ndim = ndim
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depths = tuple(depths)
        self.num_heads = tuple(num_heads)
        self.window_size = to_tuple(window_size, ndim, "window_size")
        self.patch_size = to_tuple(patch_size, ndim, "patch_size")
        self.merge_factors = tuple(merge_factors) if merge_factors else (1,) * (ndim - 2) + (2, 2)
        for name, value in (("window_size", self.window_size), ("patch_size", self.patch_size),
                            ("depths", self.depths), ("num_heads", self.num_heads),
                            ("merge_factors", self.merge_factors)):
            if min(value) < 1:
                raise ValueError(f"{name} must be positive integers, got {value}")
        self.compat = compat
        dims = [int(embed_dim * 2 ** i) for i in range(len(depths))]
        self.embed_dim = embed_dim
        self.num_features = dims[-1]

        # torchvision's 2D model drops the remainder of a size not divisible by the patch; the others pad
        pad = not (compat == "torchvision" and ndim == 2)
        self.patch_embed = PatchEmbed(self.patch_size, in_chans, embed_dim, norm_layer if patch_norm else None, pad)
        self.pos_drop = nn.Dropout(drop_rate)
        n = sum(depths)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            self.layers.append(SwinStage(
                dims[max(i - 1, 0)], dims[i], depth, num_heads[i], self.window_size,
                downsample=self.merge_factors if i > 0 else None,
                drop_path=rates[sum(depths[:i]):sum(depths[:i + 1])], norm_layer=norm_layer, block_fn=block_fn,
                merge_layer=merge_layer,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                compat=compat, attn_impl=attn_impl, **block_kwargs))
        self.norm = norm_layer(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, head_drop_rate, head_time_bins)
        self.apply(self._init_weights)
        self.set_grad_checkpointing(grad_checkpointing)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # --- training helpers used by the engine -------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters without weight decay beyond 1-d ones: the relative position bias tables."""
        return {n for n, _ in self.named_parameters() if "relative_position_bias_table" in n}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass (saves memory)."""
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @property
    def num_layers_for_lr_decay(self) -> int:
        """Number of layer groups for layer-wise lr decay: patch embed, each block, then norm and head."""
        return sum(self.depths) + 2

    def group_id(self, name: str) -> int:
        """Layer-decay group of a parameter (SimMIM's rule: merging counts with the last block before it)."""
        if name.startswith(("patch_embed", "mask_token", "absolute_pos_embed")):
            return 0
        if name.startswith("layers."):
            parts = name.split(".")
            stage = int(parts[1])
            if parts[2] == "downsample":
                return sum(self.depths[:stage])
            return sum(self.depths[:stage]) + int(parts[3]) + 1
        return sum(self.depths) + 1

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised one for num_classes."""
        self.num_classes = num_classes
        self.head = ClassifierHead(self.num_features, num_classes, self.head.drop_rate, self.head.time_bins)
        self.head.apply(self._init_weights)

    # --- forward ------------------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Fail fast with a message naming the expected input."""
        axes = "H, W" if self.ndim == 2 else "T, H, W"
        expected = f"(B, {self.in_chans}, {axes})"
        if x.ndim != self.ndim + 2:
            raise ValueError(f"expected a {self.ndim + 2}-d input {expected}, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels {expected}, got shape {tuple(x.shape)}")
        if min(x.shape[2:]) <= 0 or x.shape[0] <= 0:
            raise ValueError(f"expected positive sizes {expected}, got shape {tuple(x.shape)}")

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every stage, (B, *spatial_i, C_i), before the final norm."""
        self.check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs

    def forward_multiscale(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs channels-first, (B, C_i, *spatial_i), for FPN/UPerNet necks."""
        outs = self.forward_stages(x)
        outs[-1] = self.norm(outs[-1])
        return [channels_first(o).contiguous() for o in outs]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage after the final norm, (B, *spatial', C) as in timm."""
        return self.norm(self.forward_stages(x)[-1])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


VARIANTS_2D: dict[str, dict] = {
    "swin_t": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2),
    "swin_s": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3),
    "swin_b": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5),
    "swin_l": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), drop_path_rate=0.2),
    "swin_b_384": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=12,
                       drop_path_rate=0.5, img_size=384),
    "swin_l_384": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=12,
                       drop_path_rate=0.2, img_size=384),
}


register_variants(VARIANTS_2D, SwinTransformer, dict(ndim=2))
