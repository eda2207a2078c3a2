"""The viewer package without Qt: the session and the view state push typed events, and the
view state is bound to the settings by one function (a round trip through a real ini file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from octviewer.viewer.events import (
    Events,
    ModelChanged,
    ResultArrived,
    ScanAdded,
    ScanChanged,
    ViewChanged,
)
from octviewer.viewer.session import ModelState, Session
from octviewer.viewer.view_state import PERSISTED, ViewState, bind_settings


def test_the_view_state_tells_each_change_once() -> None:
    v = ViewState()
    seen: list[object] = []
    v.events.connect(seen.append)
    v.frame = 3
    v.frame = 3  # no change: no event
    v.opacity = 0.5551  # normalised to the slider's steps
    assert v.opacity == 0.56
    v.colormap = "no-such-map"  # the default, as before: no change, no event
    assert seen == [ViewChanged(frozenset({"frame"})), ViewChanged(frozenset({"opacity"}))]
    seen.clear()
    assert v.update(overlay_visible=False, contours=(0.5,))
    assert seen == [ViewChanged(frozenset({"overlay_visible", "contours"}))]  # one event
    assert not v.update(overlay_visible=False)


def test_showing_another_scan_or_frame_clears_show_unreliable() -> None:
    from types import SimpleNamespace

    v = ViewState()
    seen: list[object] = []
    v.events.connect(seen.append)
    v.select(1, SimpleNamespace(n_frames=9, is_volume=True))
    assert seen == [ViewChanged(frozenset({"uid", "frame"}))] and v.frame == 4
    v.show_unreliable = True
    v.cam_class = 2
    v.frame = 5
    assert not v.show_unreliable and v.cam_class == 2  # the heatmap's class is kept
    assert seen[-1] == ViewChanged(frozenset({"frame", "show_unreliable"}))


def test_the_session_tells_the_window() -> None:
    s = Session("no model")
    seen: list[object] = []
    s.events.connect(seen.append)
    entry = s.add(Path("/x/a.png"))
    assert entry.uid == 1 and s.entry(1) is entry and s.entries() == [entry]
    assert seen == [ScanAdded(entry)]
    s.changed(entry)
    s.set_model(None, ModelState.LOADING, "Loading model x…")
    assert seen[1:] == [ScanChanged(entry), ModelChanged("loading", "Loading model x…")]
    assert s.model_state is ModelState.LOADING and s.model_text == "Loading model x…"
    assert s.pop(1) is entry and s.entry(1) is None and s.pop(1) is None


def test_a_signal_face_unpacks_the_events_of_its_type() -> None:
    from octviewer.viewer.entry import ScanEntry

    events = Events()
    ready = events.signal(ResultArrived)
    got: list[int] = []
    ready.connect(got.append)
    entry = ScanEntry(7, Path("a.png"))
    events.emit(ScanChanged(entry))  # another type: not delivered
    events.emit(ResultArrived(entry))
    assert got == [7]
    ready.disconnect(got.append)
    events.emit(ResultArrived(entry))
    assert got == [7]
    with pytest.raises(TypeError):  # as a Qt signal: disconnecting a stranger raises
        ready.disconnect(got.append)


def test_settings_round_trip_through_an_ini_file(tmp_path) -> None:
    """bind_settings reads the remembered fields once and writes each change back; a new
    window's view state reads them again. The scan and frame on screen are not remembered."""
    pytest.importorskip("PySide6")
    from octviewer.ui.settings import Settings

    ini = tmp_path / "settings.ini"
    first = ViewState()
    bind_settings(first, Settings.at(ini))
    assert first == ViewState()  # a fresh ini: the defaults
    first.update(overlay_visible=False, opacity=0.7, colormap="viridis", contours=(0.5, 0.8))
    first.update(physical_aspect=True, disease_map=False, map_attention=True)
    first.include_identity = True
    first.update(uid=3, frame=12, cam_class=1, show_unreliable=True)
    Settings.at(ini).sync()
    again = ViewState()
    bind_settings(again, Settings.at(ini))
    for name, _key in PERSISTED:
        assert getattr(again, name) == getattr(first, name), name
    assert (again.uid, again.frame, again.cam_class, again.show_unreliable) == (
        None,
        0,
        None,
        False,
    )
    assert "frame" not in ini.read_text() and "cam_class" not in ini.read_text()
