"""The classic models behave as before the training core was split (commit 7c2c6b7): the losses of every
update of a short fixed-seed CPU run, and G's parameter sum after it, equal the numbers that commit printed
(``python tests/scripts/pinned_losses.py``). Latents, dropout, soft and noisy labels, instance noise,
WGAN's schedule and the gradient penalty all draw from the RNG, so any change of their order shows."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "pinned_losses.py"
BEFORE = json.loads('''{"gan": {"d": [1.3099656105041504, 1.3626062870025635, 1.243536114692688, 1.2216782569885254, 1.1937923431396484, 1.1379714012145996], "g": [0.6755783557891846, 0.6647186279296875, 0.7540640830993652, 0.8543367981910706, 0.7294475436210632, 0.9136550426483154], "g_sum": [-3.0777256045257673]}, "cgan": {"d": [1.4111448526382446, 1.4431240558624268, 1.2913544178009033, 1.2944114208221436, 1.3283601999282837, 1.1893947124481201], "g": [0.8911451697349548, 0.9271316528320312, 0.8476784229278564, 0.9592577815055847, 0.9079166054725647, 0.9112429618835449], "g_sum": [-5.933443502888622]}, "dcgan": {"d": [1.3943570852279663, 1.3769278526306152, 1.3656184673309326, 1.3904316425323486, 1.37644624710083, 1.363234043121338], "g": [0.6988903880119324, 0.6940091252326965, 0.6942139863967896, 0.6873766779899597, 0.6951996684074402, 0.689106285572052], "g_sum": [11.967162106069736]}, "lsgan": {"d": [0.3814161717891693, 0.3968910574913025, 0.3998986482620239, 0.3632121682167053, 0.37296849489212036, 0.35561832785606384], "g": [0.5083571076393127, 0.506087064743042, 0.5091928243637085, 0.5016077756881714, 0.4984038472175598, 0.4999721050262451], "g_sum": [11.960915605952323]}, "wgan": {"d": [-0.047080911695957184, -0.00010739350545918569, -9.146098454948515e-05, -6.636351463384926e-05, -0.00010061069770017639, -0.0001164911373052746], "g": [-3.772776108235121e-05], "g_sum": [12.00874670149642]}, "wgan_gp": {"d": [9.974788665771484, 9.97597885131836, 9.974555969238281, 9.973666191101074, 9.975198745727539, 9.973410606384277], "g": [-3.084839408984408e-05, -3.314087734906934e-05, -6.95947019266896e-05], "g_sum": [12.06704306581014]}}''')


def test_fixed_seed_losses_equal_the_ones_before_the_core_split(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    now = json.loads(result.stdout.strip().splitlines()[-1])
    assert now.keys() == BEFORE.keys()
    for model, series in BEFORE.items():
        for name, values in series.items():
            assert now[model][name] == pytest.approx(values, rel=1e-6, abs=1e-9), f"{model} {name}"
