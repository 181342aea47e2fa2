import runpy
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_cxr.classify import LAST_CONV_LAYER, build_resnet18
from keras_cxr.classify.convert import convert_state_dict, keras_key, load_imagenet_weights
from keras_cxr.errors import KerasCXRError

# torchvision resnet18: 11,689,512 parameters, of which fc (512 x 1000 + 1000) is 513,000.
RESNET18_BODY = 11_689_512 - 513_000


@pytest.fixture(scope="module")
def model():
    return build_resnet18(64)


def test_parameter_count_and_output(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == RESNET18_BODY + 512 * 2 + 2
    out = model(np.random.default_rng(0).uniform(0, 1, (3, 64, 64, 1)).astype("float32"))
    assert out.shape == (3, 2)
    assert float(np.min(out)) >= 0 and float(np.max(out)) <= 1  # sigmoid head
    assert model.get_layer("fc").activation.__name__ == "sigmoid"


def test_block_structure_and_names(model):
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 8 * 2 + 3  # stem, 8 blocks x 2, 3 downsample shortcuts
    assert tuple(model.get_layer(LAST_CONV_LAYER).output.shape[1:]) == (2, 2, 512)
    assert [tuple(model.get_layer(f"layer{s}_block2_relu2").output.shape[1:]) for s in (1, 2, 3, 4)] == \
        [(16, 16, 64), (8, 8, 128), (4, 4, 256), (2, 2, 512)]


def test_quarter_width_keeps_the_blocks_and_names_and_has_no_imagenet_weights(model):
    from keras_cxr.classify.backbones import backbone, build_classifier
    from keras_cxr.config import load_preset

    narrow = build_classifier(load_preset("tiny"), image_size=64)  # the tiny preset's `resnet18_w16`
    assert [layer.name for layer in narrow.model.layers] == [layer.name for layer in model.layers]
    assert [tuple(narrow.model.get_layer(f"layer{s}_block2_relu2").output.shape[1:]) for s in (1, 2, 3, 4)] == \
        [(16, 16, 16), (8, 8, 32), (4, 4, 64), (2, 2, 128)]
    assert narrow.model.get_layer("conv1").filters == 16 and narrow.feature_layer == "avgpool"
    assert backbone("resnet18_w16").load_imagenet is None  # a ClassifierSession refuses --weights imagenet-file
    with pytest.raises(KerasCXRError, match="Received: width=0"):
        build_resnet18(32, width=0)


def _torchvision_state_dict(rng):
    state = {"conv1.weight": rng.normal(size=(64, 3, 7, 7))}

    def bn(prefix, c):
        state.update({f"{prefix}.weight": rng.normal(size=c), f"{prefix}.bias": rng.normal(size=c),
                      f"{prefix}.running_mean": rng.normal(size=c), f"{prefix}.running_var": rng.uniform(0.5, 2, c),
                      f"{prefix}.num_batches_tracked": np.array(1)})

    bn("bn1", 64)
    cin = 64
    for s, c in enumerate((64, 128, 256, 512), start=1):
        for b in (0, 1):
            p = f"layer{s}.{b}"
            state[f"{p}.conv1.weight"] = rng.normal(size=(c, cin if b == 0 else c, 3, 3))
            bn(f"{p}.bn1", c)
            state[f"{p}.conv2.weight"] = rng.normal(size=(c, c, 3, 3))
            bn(f"{p}.bn2", c)
            if b == 0 and s > 1:
                state[f"{p}.downsample.0.weight"] = rng.normal(size=(c, cin, 1, 1))
                bn(f"{p}.downsample.1", c)
        cin = c
    state["fc.weight"] = rng.normal(size=(1000, 512))
    state["fc.bias"] = rng.normal(size=1000)
    return state


def test_converter_key_and_shape_mapping(tmp_path, model):
    state = _torchvision_state_dict(np.random.default_rng(0))
    arrays = convert_state_dict(state)
    assert keras_key("layer2.0.downsample.1.running_var") == "layer2_block1_downsample_bn/moving_variance"
    assert keras_key("layer4.1.conv2.weight") == "layer4_block2_conv2/kernel"
    assert arrays["conv1/kernel"][2, 5, 1, 7] == np.float32(state["conv1.weight"][7, 1, 2, 5])
    path = tmp_path / "imagenet.npz"
    np.savez(path, **arrays)
    fresh = build_resnet18(64)
    n = load_imagenet_weights(fresh, path)
    body = [w for w in fresh.weights if not w.path.startswith(("fc/", "imagenet_normalize/"))]
    assert n == len(body)
    np.testing.assert_allclose(fresh.get_layer("layer3_block1_bn2").moving_variance.numpy(),
                               state["layer3.0.bn2.running_var"], rtol=1e-6)


def test_converter_errors(tmp_path):
    with pytest.raises(KerasCXRError, match="not a torchvision resnet18 state dict"):
        convert_state_dict({"features.0.weight": np.zeros((1,))})
    with pytest.raises(KerasCXRError, match="ImageNet weights file not found"):
        load_imagenet_weights(build_resnet18(32), tmp_path / "missing.npz")
    arrays = convert_state_dict(_torchvision_state_dict(np.random.default_rng(1)))
    arrays["conv1/kernel"] = arrays["conv1/kernel"][:5]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(KerasCXRError, match=r"conv1/kernel has shape \(5, 7, 3, 64\)"):
        load_imagenet_weights(build_resnet18(32), tmp_path / "bad.npz")
    del arrays["conv1/kernel"]
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(KerasCXRError, match="lacks 1 ResNet18 weights"):
        load_imagenet_weights(build_resnet18(32), tmp_path / "short.npz")


GOLDEN_SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "torchvision_golden" / "make_golden.py"


def test_numerically_equal_to_the_torchvision_golden_file(tmp_path):
    """torchvision's logits for fixed weights and two sample images, committed by
    experiments/torchvision_golden/make_golden.py, so this runs without torch."""
    golden = runpy.run_path(str(GOLDEN_SCRIPT))
    with np.load(golden["GOLDEN"]) as z:
        x, logits = z["x"], z["logits"]
    # The check only proves something if torchvision's outputs are spread out and depend on the image.
    assert 0.5 < logits.std() < 3 and np.abs(logits[0] - logits[1]).mean() > 0.1
    np.testing.assert_array_equal(x, golden["golden_input"]())  # the same input the file was made from
    np.savez(tmp_path / "w.npz", **convert_state_dict(golden["state_dict"]()))
    model = build_resnet18(64, num_classes=1000)
    assert load_imagenet_weights(model, tmp_path / "w.npz", load_head=True) > 0
    np.testing.assert_allclose(model(x).numpy(), 1 / (1 + np.exp(-logits)), atol=1e-4)


def test_numerically_equal_to_torchvision(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install 'keras_cxr[torch]')")
    torchvision = pytest.importorskip("torchvision", reason="torchvision not installed")
    net = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    np.savez(tmp_path / "w.npz", **convert_state_dict(state))
    model = build_resnet18(64, num_classes=1000)
    load_imagenet_weights(model, tmp_path / "w.npz", load_head=True)
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 1)).astype("float32")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    xt = torch.from_numpy(((np.repeat(x, 3, -1) - mean) / std).transpose(0, 3, 1, 2).astype("float32"))
    with torch.no_grad():
        expected = torch.sigmoid(net(xt)).numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, atol=1e-4)
