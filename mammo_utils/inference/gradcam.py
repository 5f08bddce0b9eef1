"""Grad-CAM heat maps for the density and malignancy heads, aligned with the standardized image.

:class:`GradCAM` builds, once per model, a Keras model from the input to the activations of the layer
:data:`~mammo_utils.models.networks.LAST_CONV_LAYER` and to the *logits* of the heads, and a ``tf.function`` that runs
one forward pass and, for every requested head, one backward pass from the head's score to those
activations only (not through the backbone). The same forward pass gives the predictions, so callers do not
run the model twice.

Scores (the quantity whose gradient is taken)
---------------------------------------------
The output layers are ``Dense`` layers with a softmax/sigmoid activation; their logits are recomputed from
the layer's input and weights, so the pre-activation scores of the Grad-CAM paper are reachable.

Grad-CAM divides each map by its maximum, and ``ReLU(sum_k w_k A_k)`` scales with a positive factor on the
gradient, so a score and any positive per-image multiple of its gradient give the same map.

* ``density``, ``score="probability"`` (default): the map of the chosen class probability ``p_c``. It is
  computed from ``z_c - sum_{j != c} q_j z_j`` (``q`` = softmax over the other classes, held constant), whose
  gradient is ``d log p_c / (1 - p_c)``: the same map as ``p_c``, without underflow for confident models.
  It contrasts the class with its competitors and does not change if a constant is added to all logits
  (which leaves a softmax unchanged); in a planted-signal experiment it localized better than the raw logit.
* ``density``, ``score="logit"``: the raw logit ``z_c`` of the chosen class (the Grad-CAM paper's choice).
* ``malignancy``: the log-odds ``logit(p)`` in both modes; its map equals the map of ``p`` (``dp = p(1-p) dz``).
  ``malignancy_target="benign"`` uses ``-logit(p)``, i.e. the direction of ``1 - p``.
* the seed model (one ``"joint"`` softmax over ``(density - 1) * 2 + malignant``): heads are the marginals
  of the joint distribution. With joint logits ``z``, density class ``k`` has the (unnormalized) log marginal
  ``logsumexp(z[2k], z[2k+1])`` (its softmax over k is exactly the marginal density distribution), and
  malignancy has the exact marginal log-odds ``logsumexp(z[odd]) - logsumexp(z[even])``.
* any other output layer (not a softmax/sigmoid ``Dense``): the logarithm of its probabilities stands in for
  the logits.

Maps
----
Standard Grad-CAM: weights = spatial mean of the gradients, map = ReLU(sum_k w_k A_k), bilinearly upsampled
(``tf.image.resize``, half-pixel centres) to the model's input grid, i.e. the 224×224 grid of
:attr:`mammo_utils.imaging.standardize.Standardized.image`, and divided by its maximum per image (an all-zero map
stays zero; no NaN). :func:`~mammo_utils.inference.overlays.mask_to_content` zeroes the padding around the breast
content; :mod:`mammo_utils.inference.overlays` blends and draws the maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from mammo_utils.models.lesion import DENSITY_FEATURES, LESION_OUTPUT
from mammo_utils.models.networks import DENSITY_OUTPUT, LAST_CONV_LAYER, MALIGNANCY_OUTPUT, SEED_OUTPUT

__all__ = ["HEADS", "GradCAM", "GradCAMResult"]

HEADS: tuple[str, ...] = (DENSITY_OUTPUT, MALIGNANCY_OUTPUT)

_N_DENSITY = 4


@dataclass(frozen=True)
class GradCAMResult:
    """Grad-CAM maps and the predictions of the same forward pass.

    Attributes
    ----------
    cams : dict of str to np.ndarray
        Head name -> float32 ``(N, H, W)`` maps in [0, 1] on the model's input grid (max 1 per image unless the
        map is all zero).
    density_probs : np.ndarray
        float32 ``(N, 4)`` density probabilities (for the seed: the marginals of the joint softmax).
    malignancy_prob : np.ndarray
        float32 ``(N,)`` probability of malignancy (for the seed: the marginal of the joint softmax).
    density_class : np.ndarray
        int32 ``(N,)`` density class index 0–3 (BI-RADS density − 1) the density map explains.
    malignancy_target : str
        ``"malignant"`` or ``"benign"``: the direction the malignancy map explains.
    joint_probs : np.ndarray or None
        float32 ``(N, 8)`` joint softmax of the seed model; None for two-head models.
    density_logits, malignancy_logit : np.ndarray
        float32 ``(N, 4)`` and ``(N,)``: ``softmax(density_logits) = density_probs`` and
        ``sigmoid(malignancy_logit) = malignancy_prob`` (for temperature scaling without a lossy inverse).
    lesion_grids : np.ndarray or None
        float32 ``(N, h, w)``: a lesion model's own map, the probability per cell that it holds a malignant finding
        (finding probability × the cell's malignancy); None for models without a ``lesion_map`` output.
    """

    cams: dict[str, np.ndarray]
    density_probs: np.ndarray
    malignancy_prob: np.ndarray
    density_class: np.ndarray
    malignancy_target: str
    joint_probs: np.ndarray | None = None
    density_logits: np.ndarray | None = None
    malignancy_logit: np.ndarray | None = None
    lesion_grids: np.ndarray | None = None


def _dense_logit_source(model: keras.Model, name: str) -> tuple[Any, keras.layers.Layer | None, str]:
    """``(tensor, dense_layer_or_None, activation)`` from which the logits of output ``name`` are computed."""
    layer = model.get_layer(name)
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if isinstance(layer, keras.layers.Dense) and activation in {"softmax", "sigmoid"}:
        return layer.input, layer, activation
    return layer.output, None, "probability"


def _logits(tensor: tf.Tensor, layer: keras.layers.Layer | None, activation: str) -> tf.Tensor:
    """Logits of one output: ``x @ W + b`` for a softmax/sigmoid Dense layer, else log-odds/log of probabilities."""
    if layer is not None:
        z = tf.matmul(tf.cast(tensor, tf.float32), tf.cast(layer.kernel, tf.float32))
        if layer.bias is not None:
            z = z + tf.cast(layer.bias, tf.float32)
        return z
    p = tf.clip_by_value(tf.cast(tensor, tf.float32), 1e-7, 1.0 - 1e-7)
    if p.shape[-1] == 1:  # a lone probability: log-odds
        return tf.math.log(p) - tf.math.log1p(-p)
    return tf.math.log(p)


def _check_call(heads: Sequence[str], malignancy_target: str, batch_size: int) -> tuple[str, ...]:
    """The requested heads in :data:`HEADS` order; a clear ``ValueError`` for bad arguments."""
    wanted = tuple(head for head in HEADS if head in heads)
    unknown = set(heads) - set(HEADS)
    if unknown or not wanted:
        raise ValueError(f"heads must be a non-empty subset of {HEADS}, got {tuple(heads)}")
    if malignancy_target not in ("malignant", "benign"):
        raise ValueError(f"malignancy_target must be 'malignant' or 'benign', got {malignancy_target!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return wanted


def _density_classes(density_class: int | Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    """int32 ``(n,)`` class indices to explain; -1 means "the predicted class" (``density_class=None``)."""
    if density_class is None:
        return np.full(n, -1, dtype=np.int32)
    classes = np.broadcast_to(np.asarray(density_class, dtype=np.int32), (n,)).copy()
    if np.any((classes < 0) | (classes >= _N_DENSITY)):
        raise ValueError(f"density_class must be in 0..3 (BI-RADS density - 1), got {density_class!r}")
    return classes


class GradCAM:
    """Grad-CAM for the density and malignancy heads of a model from :mod:`mammo_utils.models.networks`.

    Works with two-head models (outputs ``"density"`` (N, 4) softmax and ``"malignancy"`` (N, 1) sigmoid:
    ``default``, ``transfer``) and with the seed's one-output model (``"joint"`` (N, 8) softmax), whose heads
    are the marginals of the joint distribution (see the module docstring). Build once, call many times: the
    first call per head combination traces a ``tf.function`` (about a second; see :meth:`warmup`).

    Parameters
    ----------
    model : keras.Model
        A functional model with one image input and a layer named ``layer_name``.
    layer_name : str
        Layer whose output (N, h, w, C) is explained; default :data:`~mammo_utils.models.networks.LAST_CONV_LAYER`.
    score : {"probability", "logit"}
        Density score: the class probability (default, computed without underflow) or the raw class logit.
        The malignancy map is that of the log-odds (equal to the map of the probability) in both modes.

    Examples
    --------
    >>> cam = GradCAM(model)                                   # doctest: +SKIP
    >>> result = cam(standardized.image)                       # doctest: +SKIP
    >>> result.cams["malignancy"][0].shape, result.malignancy_prob[0]   # doctest: +SKIP
    ((224, 224), 0.83)
    """

    def __init__(
        self,
        model: keras.Model,
        layer_name: str = LAST_CONV_LAYER,
        score: Literal["probability", "logit"] = "probability",
    ) -> None:
        if score not in ("logit", "probability"):
            raise ValueError(f"score must be 'logit' or 'probability', got {score!r}")
        if len(model.inputs) != 1:
            raise ValueError(f"GradCAM needs a model with one image input, got {len(model.inputs)} inputs")
        self.layer_names = dict.fromkeys(HEADS, layer_name)
        if layer_name == LAST_CONV_LAYER and LESION_OUTPUT in model.output_names:
            self.layer_names[DENSITY_OUTPUT] = DENSITY_FEATURES  # a lesion model's density branch is its own
        convs = {}
        for head, name in self.layer_names.items():
            try:
                convs[head] = model.get_layer(name)
            except ValueError:
                raise ValueError(f"model {model.name!r} has no layer named {name!r}") from None
            if len(convs[head].output.shape) != 4:
                raise ValueError(
                    f"layer {name!r} must output (N, h, w, C) feature maps, got {convs[head].output.shape}"
                )
        names = list(model.output_names)
        if SEED_OUTPUT in names:
            self.kind = "joint"
            sources = {SEED_OUTPUT: _dense_logit_source(model, SEED_OUTPUT)}
        elif DENSITY_OUTPUT in names and MALIGNANCY_OUTPUT in names:
            self.kind = "two_heads"
            sources = {head: _dense_logit_source(model, head) for head in HEADS}
        else:
            raise ValueError(
                f"model outputs {names} have neither {SEED_OUTPUT!r} nor {DENSITY_OUTPUT!r} and {MALIGNANCY_OUTPUT!r}"
            )
        self.model = model
        self.layer_name = layer_name
        self.score = score
        self.input_shape: tuple[int, int, int] = tuple(int(d) for d in model.inputs[0].shape[1:])  # type: ignore
        self._sources = {name: (layer, activation) for name, (_, layer, activation) in sources.items()}
        features = {head: conv.output for head, conv in convs.items()}
        outputs: list[Any] = [features, {name: tensor for name, (tensor, _, _) in sources.items()}]
        self.has_lesion_map = LESION_OUTPUT in names
        if self.has_lesion_map:
            outputs.append(model.get_layer(LESION_OUTPUT).output)
        self._feature_model = keras.Model(model.inputs, outputs, name=f"{model.name}_gradcam")
        self._functions: dict[tuple[str, ...], Any] = {}

    # ------------------------------------------------------------------------------------------ the graph
    def _head_logits(self, tensors: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        """Density logits (N, 4), malignancy log-odds (N,) and, for the seed, joint logits (N, 8)."""
        logits = {name: _logits(tensors[name], *self._sources[name]) for name in tensors}
        if self.kind == "two_heads":
            return logits[DENSITY_OUTPUT], tf.reshape(logits[MALIGNANCY_OUTPUT], [-1]), None
        joint = logits[SEED_OUTPUT]
        pairs = tf.reshape(joint, [-1, _N_DENSITY, 2])  # [:, d, m] = joint index d * 2 + m
        density = tf.reduce_logsumexp(pairs, axis=2)
        malignancy = tf.reduce_logsumexp(pairs[:, :, 1], axis=1) - tf.reduce_logsumexp(pairs[:, :, 0], axis=1)
        return density, malignancy, joint

    def _density_score(self, logits: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
        """Per-image density score: the class logit, or the logit minus the competitors' weighted logits.

        ``d log p_c = (1 - p_c) · d(z_c - sum_{j != c} q_j z_j)`` with ``q`` the softmax over the other
        classes (held constant), so the second score has the map of ``p_c`` without underflowing when the
        model is confident (``1 - p_c`` rounding to 0).
        """
        target = tf.gather(logits, chosen, axis=1, batch_dims=1)
        if self.score == "logit":
            return target
        is_chosen = tf.one_hot(chosen, _N_DENSITY, dtype=logits.dtype)
        others = tf.stop_gradient(tf.nn.softmax(logits - 1e9 * is_chosen))
        return target - tf.reduce_sum(others * logits, axis=1)

    def _cam(self, activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, self.input_shape[:2], method="bilinear")[..., 0]
        cam = tf.where(tf.math.is_finite(cam), cam, tf.zeros_like(cam))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.clip_by_value(tf.math.divide_no_nan(cam, peak), 0.0, 1.0)

    def _build_function(self, heads: tuple[str, ...]) -> Any:
        signature = [
            tf.TensorSpec((None, *self.input_shape), tf.float32),
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((), tf.float32),
        ]

        @tf.function(input_signature=signature)
        def run(images: tf.Tensor, density_class: tf.Tensor, malignancy_sign: tf.Tensor) -> dict[str, tf.Tensor]:
            with tf.GradientTape(persistent=len(heads) > 1) as tape:
                features, tensors, *lesion = self._feature_model(images, training=False)
                activations = {head: tf.cast(features[head], tf.float32) for head in heads}
                density, malignancy, joint = self._head_logits(tensors)
                chosen = tf.where(density_class < 0, tf.argmax(density, axis=1, output_type=tf.int32), density_class)
                scores = {}
                if DENSITY_OUTPUT in heads:
                    scores[DENSITY_OUTPUT] = tf.reduce_sum(self._density_score(density, chosen))
                if MALIGNANCY_OUTPUT in heads:
                    scores[MALIGNANCY_OUTPUT] = tf.reduce_sum(malignancy_sign * malignancy)
            out = {
                f"cam_{head}": self._cam(activations[head], tape.gradient(scores[head], activations[head]))
                for head in heads
            }
            del tape
            out["density_probs"] = tf.nn.softmax(density)
            out["malignancy_prob"] = tf.sigmoid(malignancy)
            out["density_class"] = chosen
            out["density_logits"] = density
            out["malignancy_logit"] = malignancy
            if joint is not None:
                out["joint_probs"] = tf.nn.softmax(joint)
            if lesion:
                out["lesion_grids"] = tf.cast(lesion[0][..., -1], tf.float32)  # the malignant channel
            return out

        return run

    # ------------------------------------------------------------------------------------------ public API
    def _as_batch(self, images: Any) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        h, w, c = self.input_shape
        if batch.shape in {(h, w), (h, w, c)}:
            batch = batch[None]
        if batch.ndim == 3 and c == 1:
            batch = batch[..., None]
        if batch.ndim != 4 or batch.shape[1:] != (h, w, c):
            raise ValueError(
                f"images must have shape (H, W), (N, H, W) or (N, H, W, C) with (H, W, C) = "
                f"{self.input_shape} (standardize to the model size first); got {np.shape(images)}"
            )
        return batch

    def __call__(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        heads: Sequence[str] = HEADS,
        density_class: int | Sequence[int] | np.ndarray | None = None,
        malignancy_target: Literal["malignant", "benign"] = "malignant",
        batch_size: int = 16,
    ) -> GradCAMResult:
        """Grad-CAM maps for ``heads`` and the predictions, from one forward pass per batch.

        Parameters
        ----------
        images : array-like
            One standardized image ``(H, W)`` or a batch ``(N, H, W)`` / ``(N, H, W, 1)``, float in [0, 1].
        heads : sequence of str
            Any of ``"density"``, ``"malignancy"``; both (default) share the forward pass.
        density_class : int or array of int, optional
            Density class index 0–3 (BI-RADS density − 1) to explain, one for all or one per image;
            None explains the predicted class.
        malignancy_target : {"malignant", "benign"}
            Explain evidence for malignancy (score ``logit(p)``) or for benign (``-logit(p)``, i.e. ``1 - p``).
        batch_size : int
            Images per forward pass (bounds memory).

        Returns
        -------
        GradCAMResult
        """
        wanted = _check_call(heads, malignancy_target, batch_size)
        batch = self._as_batch(images)
        classes = _density_classes(density_class, len(batch))
        if wanted not in self._functions:
            self._functions[wanted] = self._build_function(wanted)
        merged = self._run_batches(wanted, batch, classes, malignancy_target, batch_size)
        return GradCAMResult(
            cams={head: merged[f"cam_{head}"].astype(np.float32) for head in wanted},
            density_probs=merged["density_probs"].astype(np.float32),
            malignancy_prob=merged["malignancy_prob"].astype(np.float32),
            density_class=merged["density_class"].astype(np.int32),
            malignancy_target=malignancy_target,
            joint_probs=merged["joint_probs"].astype(np.float32) if "joint_probs" in merged else None,
            density_logits=merged["density_logits"].astype(np.float32),
            malignancy_logit=merged["malignancy_logit"].astype(np.float32),
            lesion_grids=merged["lesion_grids"].astype(np.float32) if "lesion_grids" in merged else None,
        )

    def _run_batches(
        self, wanted: tuple[str, ...], batch: np.ndarray, classes: np.ndarray, malignancy_target: str, batch_size: int
    ) -> dict[str, np.ndarray]:
        """Run the traced function for ``wanted`` batch by batch and concatenate its outputs per key."""
        run = self._functions[wanted]
        sign = tf.constant(1.0 if malignancy_target == "malignant" else -1.0, tf.float32)
        parts = [
            {
                key: value.numpy()
                for key, value in run(
                    tf.constant(batch[i : i + batch_size]), tf.constant(classes[i : i + batch_size]), sign
                ).items()
            }
            for i in range(0, max(len(batch), 1), batch_size)
        ]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def warmup(self, heads: Sequence[str] = HEADS) -> None:
        """Trace and run the graph once on a blank image, so the first real call is fast."""
        self(np.zeros(self.input_shape, dtype=np.float32), heads=heads)
