"""Importers: one module per raw annotation format, each turning a source entry into schema records.

`IMPORTERS` maps a `format` name of `params.yaml` `data.sources` to `load(entry) -> Iterator[record]`;
`OPTIONS` lists the extra source-entry keys each format accepts. The entry an importer receives is
described in `videoreasoner.data.importers.common`. To add a format: write a module with `load`, register it here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from videoreasoner.data.importers import charades_sta, hcstvg, sharegpt, synthetic, video_r1
from videoreasoner.core.schema import Record

Importer = Callable[[dict], Iterator[Record]]

IMPORTERS: dict[str, Importer] = {
    "synthetic": synthetic.load,
    "video_r1": video_r1.load,
    "sharegpt": sharegpt.load,
    "charades_sta": charades_sta.load,
    "hcstvg": hcstvg.load,
}

OPTIONS: dict[str, tuple[str, ...]] = {
    "synthetic": (),
    "video_r1": (),
    "sharegpt": ("problem_type",),
    "charades_sta": ("video_ext",),
    "hcstvg": ("box_format", "frame_base", "video_ext"),
}
