"""Importers: one module per raw annotation format, each turning a source entry into schema records.

`IMPORTERS` maps a `format` name of `params.yaml` `data.sources` to `load(entry) -> Iterator[record]`;
`OPTIONS` lists the extra source-entry keys each format accepts; `OWN_SPLIT` the formats whose rows may
carry their own `split` (the others need the entry's `split` or `split_fractions`). The entry an
importer receives is described in `videoreasoner.data.importers.common`. To add a format: write a
module with `load`, register it here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from videoreasoner.data.importers import (charades_sta, hcstvg, mvbench, records, sharegpt, synthetic, video_r1,
                                          videomme, vstar)
from videoreasoner.core.schema import Record

Importer = Callable[[dict], Iterator[Record]]

IMPORTERS: dict[str, Importer] = {
    "synthetic": synthetic.load,
    "video_r1": video_r1.load,
    "sharegpt": sharegpt.load,
    "charades_sta": charades_sta.load,
    "hcstvg": hcstvg.load,
    "records": records.load,
    "mvbench": mvbench.load,
    "videomme": videomme.load,
    "vstar": vstar.load,
}

OPTIONS: dict[str, tuple[str, ...]] = {
    "synthetic": (),
    "video_r1": (),
    "sharegpt": ("problem_type",),
    "charades_sta": ("video_ext",),
    "hcstvg": ("box_format", "frame_base", "video_ext"),
    "records": (),
    "mvbench": ("task",),
    "videomme": (),
    "vstar": ("video_ext",),
}

OWN_SPLIT: tuple[str, ...] = ("synthetic", "records")
