"""Explanations of one face: a registry of methods with one signature (`register_explainer`), the paper's
occlusion maps, Captum's gradient maps, facial regions, the STN's attention, faithfulness, and drawing."""

from deep_emotion.explain import gradients, regions  # noqa: F401  (they register their methods)
from deep_emotion.explain.faithfulness import faithfulness, perturbation_curve, perturbed_images, random_map
from deep_emotion.explain.gradients import cam_layer, to_input_frame
from deep_emotion.explain.occlusion import (
    MODES,
    captum_occlusion,
    check_window,
    maps_from_probabilities,
    n_windows,
    occluded_probabilities,
    occlusion_map,
    occlusion_map_loop,
    scores_to_map,
    stn_view,
    window_masks,
    window_positions,
)
from deep_emotion.explain.regions import REGIONS, region_mask, region_sentence, turned_degrees
from deep_emotion.explain.registry import (
    EXPLAINERS,
    Context,
    Explainer,
    ExplainerUnavailable,
    Map,
    Method,
    check_methods,
    explain_face,
    images_per_face,
    list_explainers,
    register_explainer,
)

__all__ = [
    "EXPLAINERS",
    "Context",
    "Explainer",
    "ExplainerUnavailable",
    "Map",
    "Method",
    "check_methods",
    "explain_face",
    "images_per_face",
    "list_explainers",
    "register_explainer",
    "MODES",
    "captum_occlusion",
    "check_window",
    "maps_from_probabilities",
    "n_windows",
    "occluded_probabilities",
    "occlusion_map",
    "occlusion_map_loop",
    "scores_to_map",
    "stn_view",
    "window_masks",
    "window_positions",
    "faithfulness",
    "perturbation_curve",
    "perturbed_images",
    "random_map",
    "REGIONS",
    "region_mask",
    "region_sentence",
    "turned_degrees",
    "cam_layer",
    "to_input_frame",
]
