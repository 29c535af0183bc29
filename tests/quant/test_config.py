import pytest

from qasic.errors import ConfigError
from qasic.quant import QuantConfig


@pytest.mark.parametrize("kwargs, message", [
    ({"weight_bits": 9}, "weight_bits = 9 is out of range: allowed integers 2..8"),
    ({"weight_bits": 1}, "weight_bits = 1 is out of range"),
    ({"weight_bits": True}, "weight_bits = True must be an int in 2..8"),
    ({"weight_bits": {"fc": 9}}, "weight_bits['fc'] = 9 is out of range"),
    ({"weight_bits": "4"}, "weight_bits = '4' must be an int in 2..8 or a dict"),
    ({"activation_bits": 16}, "activation_bits = 16 is out of range"),
    ({"activation_observer": "kl"}, "activation_observer = 'kl' is unknown: allowed 'minmax'"),
    ({"weight_clipping": "l1"}, "weight_clipping = 'l1' is unknown: allowed 'auto', 'minmax'"),
    ({"percentile": 120}, "percentile = 120 must be in"),
    ({"weight_rounding": "adaround"},
     "weight_rounding = 'adaround' is unknown: allowed 'nearest', 'gptq'"),
    ({"equalize": 1}, "equalize = 1 must be True or False"),
    ({"recurrence_bits": 17}, "recurrence_bits = 17 is out of range: allowed integers 2..16"),
    ({"softmax_bits": 16}, "softmax_bits = 16 is out of range: allowed integers 2..8"),
])
def test_bad_values_name_the_key_the_value_and_the_allowed(kwargs, message):
    with pytest.raises(ConfigError) as e:
        QuantConfig(**kwargs)
    assert message in str(e.value)


def test_per_layer_bits_and_auto_clipping():
    layers = {"conv2": 4}
    cfg = QuantConfig(weight_bits=layers)
    layers["conv2"] = 9  # the config keeps its own copy
    assert cfg.bits_for("conv2") == 4 and cfg.bits_for("fc") == 8
    assert cfg.named_layers == ("conv2",)
    assert cfg.clipping_for(4) == "mse" and cfg.clipping_for(5) == "minmax"
    assert QuantConfig(weight_clipping="minmax").clipping_for(2) == "minmax"
    assert QuantConfig(3).bits_for("anything") == 3 and QuantConfig(3).named_layers == ()
