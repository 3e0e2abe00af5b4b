"""Explanation methods as plugins: the registry, every method's map, sanity checks (Adebayo et al., 2018),
faithfulness in batches, facial regions from landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from deep_emotion import explain
from deep_emotion.explain.regions import region_mask
from deep_emotion.explain.registry import EXPLAINERS, Context, Map, explain_face
from deep_emotion.faces.detect import detect_faces
from deep_emotion.faces.framing import Framing
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.models.inputs import to_tensor
from deep_emotion.models.paper import DeepEmotion
from deep_emotion.results import AnalysisOptions

from .conftest import pipeline_of

ALL = tuple(EXPLAINERS)
GRADIENT = ("integrated-gradients", "smoothgrad", "gradcam")
# Randomised weights must change every map: the Spearman rank correlation between the trained model's map and
# the randomised model's stays below this. Two unrelated maps of 2304 pixels correlate at 0 +- 0.02; Adebayo et
# al. found gradient maps of randomised networks still follow the input's edges, which correlates maps of any
# network with the face's structure — that shared part may stay, a map that mostly survives randomisation
# (rho >= 0.5: more than a quarter of its rank variance explained) does not explain the trained network.
RANDOMISED_MAX_RHO = 0.5


@pytest.fixture(scope="module")
def face(astronaut_path):
    f = detect_faces(Image.open(astronaut_path))[0]
    return f


@pytest.fixture(scope="module")
def trained():
    return load_checkpoint("fer2013", posthoc=True)


def randomised(model: DeepEmotion, seed: int = 0) -> DeepEmotion:
    """The same architecture (and post-hoc corrections) with its weights as training starts them: Gaussian
    (sigma 0.05), the STN at the identity."""
    torch.manual_seed(seed)
    out = DeepEmotion(model.config)
    out.posthoc = model.posthoc
    return out.eval()


def maps_of(model, x, target, methods=ALL, **ctx) -> dict[str, Map]:
    maps, skipped = explain_face(model, x, target, methods, Context(window=8, stride=4, **ctx))
    assert not skipped, skipped
    return maps


def test_registry_holds_every_method_with_one_signature():
    assert set(ALL) >= {
        "occlusion-flip",
        "occlusion-drop",
        "captum-occlusion",
        "integrated-gradients",
        "smoothgrad",
        "gradcam",
        "regions",
        "stn",
    }
    with pytest.raises(ValueError, match="already registered"):
        explain.register_explainer("gradcam", "x", "x")(lambda *a: None)
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain_face(DeepEmotion().eval(), torch.zeros(1, 1, 48, 48), 0, ["nope"])


def test_every_map_is_finite_and_input_sized(trained, face):
    model, _ = trained
    x = to_tensor(face.crop)
    for name, m in maps_of(model, x, 3, landmarks=face.crop_landmarks).items():
        assert m.values.shape == (48, 48) and m.values.dtype == np.float32, name
        assert np.isfinite(m.values).all(), name
        assert m.forward_passes > 0 and m.unit, name
        assert m.values.min() >= 0 or m.signed, name  # unsigned maps are never negative


@pytest.mark.parametrize("name", ["fer2013", "fer2013-wide"])
def test_gradient_methods_run_on_the_paper_and_the_wide_network(name, face):
    model, _ = load_checkpoint(name, posthoc=True)
    x = to_tensor(face.crop)
    with torch.inference_mode():  # as analyze calls them
        maps = maps_of(model, x, 3, methods=GRADIENT)
    for m in maps.values():
        assert np.isfinite(m.values).all() and m.values.shape == (48, 48) and np.abs(m.values).max() > 0
        assert m.backward_passes > 0


def test_maps_depend_on_the_target_class(trained, face):
    model, _ = trained
    x = to_tensor(face.crop)
    happy, sad = (
        maps_of(model, x, 3, landmarks=face.crop_landmarks),
        maps_of(model, x, 4, landmarks=face.crop_landmarks),
    )
    for name in ALL:
        if EXPLAINERS[name].target_dependent:
            assert not np.allclose(happy[name].values, sad[name].values, atol=1e-6), name
        else:
            np.testing.assert_array_equal(happy[name].values, sad[name].values)


@pytest.mark.parametrize("name", ["fer2013", "fer2013-wide"])
def test_randomised_weights_change_every_map(name, face):
    """Adebayo et al.'s model-parameter randomisation test, on three faces (the crop, mirrored, shifted)."""
    model, _ = load_checkpoint(name, posthoc=True)
    noise = randomised(model)
    crops = [face.crop, face.crop[:, ::-1], np.roll(face.crop, 3, axis=0)]
    # attribution maps: rank correlation; the STN's map is the area its affine grid samples, a geometric view,
    # not an attribution: randomised weights (the STN at the identity) must move that area's corners instead
    rho = {name: [] for name in ALL if name != "stn"}
    moved = []
    for crop in crops:
        x = to_tensor(np.ascontiguousarray(crop))
        a, b = maps_of(model, x, 3), maps_of(noise, x, 3)
        moved.append(float(np.abs(a["stn"].outline - b["stn"].outline).mean()))
        for name in rho:
            u, v = a[name].values.ravel(), b[name].values.ravel()
            if u.std() == 0 or v.std() == 0:  # a flat map: different unless both are the same constant
                rho[name].append(1.0 if np.allclose(u, v) else 0.0)
            else:
                rho[name].append(spearmanr(u, v).statistic)
    for name, values in rho.items():
        assert np.mean(values) < RANDOMISED_MAX_RHO, (name, values)
    assert min(moved) > 1.0, moved  # pixels of the 48x48 input, mean over the four corners


def test_integrated_gradients_add_up_to_the_probability_gained_over_black(trained, face):
    """Completeness: the attributions sum to p(face) - p(black), up to the path integral's error, which the map
    reports and which more steps shrink."""
    model, _ = trained
    x = to_tensor(face.crop)
    with torch.no_grad():
        gained = float(model(x).softmax(1)[0, 3] - model(torch.zeros_like(x)).softmax(1)[0, 3])
    m = maps_of(model, x, 3, methods=["integrated-gradients"])["integrated-gradients"]
    gap = float(m.note.split(", ")[1].split(" ")[0])
    assert m.values.sum() - gained == pytest.approx(gap, abs=1e-3) and abs(gap) < 0.15
    fine = maps_of(model, x, 3, methods=["integrated-gradients"], ig_steps=400)["integrated-gradients"]
    assert fine.values.sum() == pytest.approx(gained, abs=0.02)


def test_batched_faithfulness_equals_one_curve_at_a_time(trained, face):
    model, _ = trained
    x = to_tensor(face.crop)
    maps = {
        "drop": torch.from_numpy(maps_of(model, x, 3, methods=["occlusion-drop"])["occlusion-drop"].values),
        "random": explain.random_map(48),
    }
    scores = explain.faithfulness(model, x, maps, 3, batch_size=40)  # chunks that split the curves
    for name, m in maps.items():
        for kind in ("deletion", "insertion"):
            assert scores[name][kind] == pytest.approx(
                explain.perturbation_curve(model, x, m, kind, target=3)[1], abs=1e-5
            )
    assert scores["drop"]["difference"] > scores["random"]["difference"]  # the trained model's map beats chance


def test_gradcam_follows_the_stn_back_to_the_input():
    v = torch.zeros(1, 1, 48, 48)
    v[..., 20:28, 30:38] = 1.0
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(explain.to_input_frame(v, identity), v, atol=1e-5, rtol=0)
    # the view shows the input shifted: view pixel at x shows the input at x + 0.25 * 24 pixels
    shift = torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, 0.0]]])
    back = explain.to_input_frame(v, shift)[0, 0]
    cols = torch.nonzero(back > 0.5)[:, 1]
    assert int(cols.min()) == 36 and int(cols.max()) == 43


def test_methods_that_do_not_apply_are_skipped_with_a_reason():
    class NoConv(torch.nn.Module):
        features = torch.nn.Identity()

        def forward(self, x):
            return x.flatten(1)[:, :3] * 5

        def stn_view(self, x):
            return None

    maps, skipped = explain_face(NoConv().eval(), torch.rand(1, 1, 48, 48), 1, ["gradcam", "stn", "occlusion-drop"])
    assert set(maps) == {"occlusion-drop"}
    assert "convolution" in skipped["gradcam"] and "spatial transformer" in skipped["stn"]

    @explain.register_explainer("test-broken", "Broken", "Fails.")
    def broken(model, x, target, ctx):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(long trace)")

    try:
        maps, skipped = explain_face(NoConv().eval(), torch.rand(1, 1, 48, 48), 1, ["test-broken", "occlusion-drop"])
        assert set(maps) == {"occlusion-drop"}
        assert (
            skipped["test-broken"] == "failed on this model (RuntimeError: mat1 and mat2 shapes cannot be multiplied)"
        )
    finally:
        del EXPLAINERS["test-broken"]


def test_a_registered_method_reaches_analyze(astronaut_path):
    @explain.register_explainer("test-brightness", "Brightness", "The face itself.")
    def brightness(model, x, target, ctx):
        return Map("test-brightness", x[0, 0].numpy().copy(), False, "pixel value", 0, 0)

    try:
        model = DeepEmotion().eval()
        classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
        options = AnalysisOptions(("test-brightness", "regions"), faithfulness=True, detect=False)
        pipe = pipeline_of({"m": (model, classes)})
        view = pipe.analyze(Image.open(astronaut_path), options=options).faces[0].views["m"]
        assert list(view.maps) == ["test-brightness", "regions"]
        assert set(view.faithfulness) == {"test-brightness", "regions", "random"}
        assert view.to_dict()["maps"]["test-brightness"]["unit"] == "pixel value"
    finally:
        del EXPLAINERS["test-brightness"]


def test_options_are_checked_in_one_place():
    with pytest.raises(ValueError, match="window must be between 1 and 48.*unknown explanation method"):
        AnalysisOptions(("nope",), window=60).check()
    with pytest.raises(ValueError, match="at least one explanation method"):
        AnalysisOptions(()).check()
    AnalysisOptions(window=24, stride=24).check()
    options = AnalysisOptions(("regions",), 6, 3, "sad", True)
    assert AnalysisOptions.from_dict(options.to_dict()) == options


def test_regions_follow_the_landmarks(face):
    mask, own = region_mask(face.crop_landmarks)
    assert own
    names = explain.REGIONS
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.crop_landmarks
    assert names[mask[int(ly), int(lx)]] == "eyes" and names[mask[int(ry), int(rx)]] == "eyes"
    assert names[mask[int((mly + mry) / 2), int((mlx + mrx) / 2)]] == "mouth"
    assert names[mask[int(ly) - 7, int(lx)]] == "brows"
    assert names[mask[0, 0]] == "rest" and {names[i] for i in np.unique(mask)} == set(names)
    # a head turned 90 degrees: the eyes stacked vertically, the mouth to their side
    turned = np.array([[20.0, 14.0], [20.0, 32.0], [28.0, 23.0], [36.0, 16.0], [36.0, 30.0]])
    m90, _ = region_mask(turned)
    assert names[m90[23, 36]] == "mouth" and names[m90[14, 20]] == "eyes"
    # no landmarks, non-finite or collapsed ones: the typical FER2013 positions
    typical, own = region_mask(None)
    assert not own
    for bad in (np.full((5, 2), np.nan), np.zeros((5, 2))):
        m, own = region_mask(bad)
        assert not own and (m == typical).all()


def test_region_ablation_names_the_region_that_matters(trained, face):
    model, _ = trained
    m = maps_of(model, to_tensor(face.crop), 3, methods=["regions"], landmarks=face.crop_landmarks)["regions"]
    assert set(m.regions) == set(explain.REGIONS)
    with torch.no_grad():  # each region's value is the fall of p(happy) with that region blurred
        x = to_tensor(face.crop)
        mask = torch.from_numpy(region_mask(face.crop_landmarks)[0] == explain.REGIONS.index("mouth"))
        from torchvision.transforms.functional import gaussian_blur

        blurred = torch.where(mask, gaussian_blur(x, 25, 4.0), x)
        fall = float(model(x).softmax(1)[0, 3] - model(blurred).softmax(1)[0, 3])
    assert m.regions["mouth"] == pytest.approx(fall, abs=1e-5)
    assert explain.region_sentence(m, "happy").startswith("blurring the")


def test_landmarks_are_mapped_into_the_crop(face, astronaut_path):
    pts = face.crop_landmarks
    assert pts.shape == (5, 2) and (pts > 0).all() and (pts < 48).all()
    assert pts[0, 0] < pts[1, 0] and pts[0, 1] < pts[3, 1]  # left eye left of the right one, above the mouth
    aligned = detect_faces(Image.open(astronaut_path), framing=Framing(align=True, align_above=0))[0]
    assert aligned.crop_landmarks[0, 1] == pytest.approx(aligned.crop_landmarks[1, 1], abs=0.01)  # eyes level


def test_stn_attention_outlines_the_sampled_area(trained, face):
    model, _ = trained
    x = to_tensor(face.crop)
    m = maps_of(model, x, 3, methods=["stn"])["stn"]
    _, theta = model.stn_view(x)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    expected = ((corners @ theta[0, :, :2].T + theta[0, :, 2]) + 1) / 2 * 48
    np.testing.assert_allclose(m.outline, expected.numpy(), atol=1e-4)
    centre = np.round(expected.numpy().mean(0)).astype(int)
    assert m.values[centre[1], centre[0]] == pytest.approx(1.0)


def test_a_model_without_stn_is_explained_and_says_so(tmp_path, astronaut_path):
    """Another family (the ResNet-style one): Grad-CAM finds its last residual block; no STN view, no STN map."""
    from deep_emotion.models.checkpoints import save_checkpoint
    from deep_emotion.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("ResNetSmall", {"num_classes": 7}).eval()
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    save_checkpoint(model, {"name": "tiny", "dataset": "folder", "classes": classes}, tmp_path / "tiny")
    loaded = load_checkpoint(tmp_path / "tiny.safetensors", posthoc=True)
    options = AnalysisOptions(("gradcam", "integrated-gradients", "stn", "regions"), faithfulness=True)
    view = pipeline_of({"tiny": loaded}).analyze(Image.open(astronaut_path), options=options).faces[0].views["tiny"]
    assert set(view.maps) == {"gradcam", "integrated-gradients", "regions"}
    assert "spatial transformer" in view.skipped["stn"] and view.stn_view is None and view.theta is None
    assert view.to_dict()["skipped"] == view.skipped and view.to_dict()["theta"] is None
    assert isinstance(explain.cam_layer(loaded[0]), type(loaded[0].features[-3]))


def test_gradcam_cells_sit_over_the_pixels_they_see():
    """The paper network's convolutions have no padding: its 9x9 grid covers pixels 7.5 ... 39.5 (each cell the
    middle of its 16-pixel field), not 0 ... 47; the wide network pads, so its 12x12 grid is plain upsampling."""
    from deep_emotion.explain.gradients import cam_cells, cam_layer, place_cells

    paper, _ = load_checkpoint("fer2013")
    wide, _ = load_checkpoint("fer2013-wide")
    assert cam_cells(paper, cam_layer(paper), 48) == (7.5, 4.0, 9)
    assert cam_cells(wide, cam_layer(wide), 48) == (1.5, 4.0, 12)
    cam = torch.zeros(1, 1, 9, 9)
    cam[0, 0, 0, 4] = 1.0  # the top row's middle cell
    placed = place_cells(cam, 7.5, 4.0, 48)[0, 0]
    # column 23 is 3.875 cells from the first centre: 0.875 of cell 4; rows 0..7 lie before the first row of
    # centres (7.5) and take its value; row 11 is 0.875 cells past it: 0.125 of it
    assert float(placed[0, 23]) == pytest.approx(0.875) and float(placed[7, 23]) == pytest.approx(0.875)
    assert float(placed[11, 23]) == pytest.approx(0.125 * 0.875)
    assert float(placed[0, 3]) == 0.0 and float(placed[30, 23]) == 0.0
    grid = torch.arange(12.0).view(1, 1, 1, 12).expand(1, 1, 12, 12)
    torch.testing.assert_close(
        place_cells(grid, 1.5, 4.0, 48),
        torch.nn.functional.interpolate(grid, size=(48, 48), mode="bilinear"),
        atol=1e-5,
        rtol=0,
    )
