import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from qasic.errors import InputError
from qasic.reports import energy_accuracy_figure, render_report
from qasic.reports.plots import png_bytes


def render(results: dict, tmp_path: Path, **kwargs) -> str:
    path = render_report(results, tmp_path / "report.html", **kwargs)
    assert path == tmp_path / "report.html"
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(make: Callable[[], dict], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fixture's report, rendered once for the tests that only read it."""
    return render(make(), tmp_path_factory.mktemp("report"))


def point_row(page: str, name: str) -> str:
    (row,) = re.findall(rf'<tr[^>]*data-point="{re.escape(name)}"[^>]*>.*?</tr>', page)
    return row


def test_one_table_row_per_point(page: str, make: Callable[[], dict]) -> None:
    assert re.findall(r'data-point="([^"]*)"', page) == [p["name"] for p in make()["points"]]


def test_point_row_contents(page: str) -> None:
    row = point_row(page, "W8-4-4A8")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    # name, weight bits, act bits, PE bits, acc %, delta pp, cycles, latency us, MACs, DRAM bytes,
    # area mm2, energy nJ x6, exact, pareto
    assert cells == ["W8-4-4A8", "8 / 4 / 4", "8", "8 × 8", "97.50", "-0.30", "2,200", "4.4",
                     "88,064", "1,062", "0.876", "170", "34", "51", "68", "8.5", "8.5", "✓ yes",
                     "yes"]


def test_points_table_headers_name_pe_latency_and_area(page: str) -> None:
    for header in ("PE bits (act × wt)", "Latency µs", "Area mm²", "Leakage nJ"):
        assert f"<th>{header}</th>" in page


def test_shift_add_pes_are_labelled(results: dict, tmp_path: Path) -> None:
    results["points"][0]["pe_bits"].update(activation=5, activation_shift=4, weight=5,
                                           weight_shift=4)
    assert "<td>5s4 × 5s4</td>" in point_row(render(results, tmp_path), "W8A8")


def test_weight_bits_header_names_layers(page: str) -> None:
    assert "<th>Weight bits (conv1 / conv2 / fc)</th>" in page


def test_chosen_and_dominated_points(page: str) -> None:
    assert 'class="chosen"' in point_row(page, "W4A8")
    assert point_row(page, "W2A8").endswith("<td></td></tr>")  # dominated: not on the front


def test_bit_exact_false_is_obvious(results: dict, tmp_path: Path) -> None:
    results["points"][1]["bit_exact"] = False
    page = render(results, tmp_path)
    row = point_row(page, "W6A8")
    assert 'class="not-exact"' in row and '<td class="bad">✗ NO</td>' in row
    assert "<div class=alert>Point W6A8 is not bit-exact</div>" in page
    assert "class=alert" not in render(results | {"points": results["points"][2:]}, tmp_path)


def test_inlines_png_images(page: str) -> None:
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2  # Pareto plot and the chosen point's layer breakdown
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)


def test_self_contained(results: dict, tmp_path: Path) -> None:
    results["energy_sources"][0]["source"] = "see https://example.org/energy"
    page = render(results, tmp_path)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"<(script|link|iframe)\b", page, re.IGNORECASE)
    assert "<style>" in page
    assert "see https://example.org/energy" in page  # as text only


def test_escapes_user_text(results: dict, tmp_path: Path) -> None:
    results["model"] = "<script>alert('x')</script>"
    results["points"][0]["name"] = 'W8"A8&'
    results["chosen_point"] = 'W8"A8&'
    page = render(results, tmp_path)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'data-point="W8&quot;A8&amp;"' in page


def test_title_names_model_and_arch(page: str) -> None:
    assert "<title>qasic report: digits_cnn on default-16x16</title>" in page


def test_chosen_point_layer_table(page: str) -> None:
    section = page[page.index('<section id="chosen">'):page.index('<section id="rtl">')]
    assert "<b>W4A8</b>, chosen by the rule: named by chosen_point in results.json" in section
    assert "PEs 8 × 4 bits; latency 4.2 µs" in section  # the chosen point's array and latency
    assert '<tr><td>Array (PE grid)</td><td class="num">0.1280</td>' in section
    assert '<tfoot><tr><td>Total</td><td class="num">0.7480</td>' in section
    rows = re.findall(r"<tr><td>(conv1|conv2|fc|Sum of layers)</td>", section)
    assert rows == ["conv1", "conv2", "fc", "Sum of layers"]
    assert '<td class="num">2,100</td>' in section  # cycles of the sum row


def test_chosen_point_defaults_to_most_accurate_front_point(results: dict, tmp_path: Path) -> None:
    del results["chosen_point"]
    page = render(results, tmp_path)
    assert "<b>W8A8</b>, chosen by the rule: the most accurate point on the Pareto front" in page
    assert 'class="chosen"' in point_row(page, "W8A8")


def test_chosen_rule_is_stated(results: dict, tmp_path: Path) -> None:
    results["chosen_rule"] = "the lowest energy within one accuracy point of fp32"
    page = render(results, tmp_path)
    assert "<b>W4A8</b>, chosen by the rule: the lowest energy within one accuracy point" in page


def test_area_that_is_not_its_parts_is_rejected(results: dict, tmp_path: Path) -> None:
    results["points"][2]["area_mm2"] += 1
    with pytest.raises(InputError, match=r"points\[2\]\.area_mm2 = .* is not the sum of "
                                         "area_parts_mm2"):
        render(results, tmp_path)
    results["points"][2]["area_parts_mm2"]["control"] = -1.0
    with pytest.raises(InputError, match=r"area_parts_mm2\.control = -1.0 must be >= 0"):
        render(results, tmp_path)


def test_rtl_section(page: str) -> None:
    section = page[page.index('<section id="rtl">'):page.index('<section id="arch">')]
    assert '<td>Verified</td><td class="ok">yes</td>' in section
    assert '<td>Samples (whole program, DRAM to DRAM)</td><td class="num">16</td>' in section
    assert '<td>RTL cycles</td><td class="num">8,016</td>' in section
    assert "Verilator via cocotb" in section
    assert len(re.findall(r"<tr><td>(load|compute|store)</td>", section)) == 3


def test_rtl_failure_is_obvious(results: dict, tmp_path: Path) -> None:
    results["rtl"].update(verified=False, outputs_equal=False, cycles_rtl=8100,
                          cycle_error=84 / 8016)
    results["rtl"]["queues"][1].update(busy_rtl=7003)
    page = render(results, tmp_path)
    assert '<td>Verified</td><td class="bad">NO</td>' in page
    assert '<td class="num">+3</td><td class="bad">✗ NO</td>' in page
    assert "<div class=alert>RTL not verified: outputs DIFFER, cycle error 1.05%</div>" in page


def test_arch_and_energy_sources(page: str) -> None:
    assert "<tr><td>array_rows</td><td>16</td></tr>" in page
    assert ('<tr><td>dram_pj_per_bit</td><td class="num">8</td><td>pJ per bit transferred</td>'
            in page)
    assert "CACTI-7 via Bit Fusion (ISCA 2018) &lt;45 nm&gt;" in page


def test_reuses_given_figure(results: dict, tmp_path: Path) -> None:
    figure = energy_accuracy_figure(results)
    figure.axes[0].set_title("marker title")
    page = render(results, tmp_path, figures={"pareto": figure})
    first_image = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert first_image == base64.b64encode(png_bytes(figure)).decode("ascii")
    with pytest.raises(ValueError, match="unknown figure key 'paretto'"):
        render(results, tmp_path, figures={"paretto": figure})


def test_same_results_same_bytes(results: dict, tmp_path: Path) -> None:
    assert render(results, tmp_path) == render(results, tmp_path)


def test_invalid_results_rejected_before_writing(results: dict, tmp_path: Path) -> None:
    del results["rtl"]
    with pytest.raises(InputError, match=r"results\.json lacks 'rtl'"):
        render(results, tmp_path)
    assert not (tmp_path / "report.html").exists()
