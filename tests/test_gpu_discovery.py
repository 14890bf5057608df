"""Discovery: /proc/meminfo, ROCm sysfs, NVML when present, and the fake used by other tests."""

from __future__ import annotations

from pathlib import Path

from ocillm.gpu import FakeDiscovery, SystemDiscovery, fake_gpu
from ocillm.gpu.cpu import parse_meminfo
from ocillm.gpu.nvml import nvidia_gpus
from ocillm.gpu.rocm import amd_gpus

MEMINFO = """MemTotal:       16315084 kB
MemFree:          512000 kB
MemAvailable:    8157542 kB
Buffers:          100000 kB
Cached:          4000000 kB
"""


def test_meminfo_reports_total_and_available_bytes() -> None:
    mem = parse_meminfo(MEMINFO)
    assert mem.total == 16315084 * 1024
    assert mem.free == 8157542 * 1024


def test_meminfo_without_available_sums_free_and_caches() -> None:
    text = "\n".join(line for line in MEMINFO.splitlines() if "Available" not in line)
    assert parse_meminfo(text).free == (512000 + 100000 + 4000000) * 1024


def _card(drm: Path, n: int, total: int | None, used: int, name: str = "") -> None:
    device = drm / f"card{n}" / "device"
    device.mkdir(parents=True)
    if total is not None:
        (device / "mem_info_vram_total").write_text(f"{total}\n")
        (device / "mem_info_vram_used").write_text(f"{used}\n")
    if name:
        (device / "product_name").write_text(name + "\n")


def test_rocm_sysfs_lists_cards_with_vram(tmp_path: Path) -> None:
    _card(tmp_path, 0, 16 << 30, 1 << 30, "Radeon Pro")
    _card(tmp_path, 1, None, 0)  # an integrated GPU without VRAM files
    _card(tmp_path, 2, 8 << 30, 0)
    (tmp_path / "card0-DP-1").mkdir()  # a connector, not a card
    gpus = amd_gpus(tmp_path)
    assert [(g.id, g.index, g.library) for g in gpus] == [
        ("card0", 0, "rocm"),
        ("card2", 1, "rocm"),
    ]
    assert gpus[0].name == "Radeon Pro"
    assert gpus[0].free_memory == 15 << 30
    assert gpus[1].total_memory == 8 << 30


def test_rocm_without_sysfs_is_empty(tmp_path: Path) -> None:
    assert amd_gpus(tmp_path / "missing") == []


def test_nvml_without_a_driver_is_empty_not_an_error() -> None:
    gpus = nvidia_gpus()  # a machine with an NVIDIA driver lists its GPUs; others list none
    assert all(g.library == "cuda" and g.total_memory > 0 for g in gpus)


def test_system_discovery_always_reports_system_memory() -> None:
    inv = SystemDiscovery().inventory()
    assert inv.system.total > 0
    assert 0 <= inv.system.free <= inv.system.total


def test_fake_discovery_reports_what_it_is_given() -> None:
    fake = FakeDiscovery([fake_gpu(0, 8 << 30, free=6 << 30)])
    inv = fake.inventory()
    assert inv.gpus[0].free_memory == 6 << 30 and inv.total_vram == 8 << 30
    fake.gpus = ()
    assert fake.inventory().gpus == () and fake.calls == 2
