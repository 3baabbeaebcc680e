"""The ``.ibkr`` recording format, the frame cutter, the divergence rule, and the replay server on a raw socket."""

from __future__ import annotations

import asyncio
import gzip
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.simulation.tws.protocol import frame, split_payload
from quanticity.simulation.tws.recording import (
    FrameCutter,
    RecordedEvent,
    RecordingFormatError,
    RecordingWriteError,
    RecordingWriter,
    read_recording,
)
from quanticity.simulation.tws.recording_proxy import RecordingProxy
from quanticity.simulation.tws.replay import ReplayServer, differing_fields

GREETING = b"API\0" + struct.pack(">I", 9) + b"v157..176"


def _session() -> list[RecordedEvent]:
    """A small two-connection recording, with frames that need ``raw`` to be exact."""
    return [
        RecordedEvent(1, 0.0, "open", note="127.0.0.1:5000 2026-03-03T20:30:00+00:00"),
        RecordedEvent.from_wire(1, 0.001, "handshake", "c2s", GREETING),
        RecordedEvent.from_wire(1, 0.002, "handshake", "s2c", frame(["176", "20260303 15:30:00 US/Eastern"])),
        RecordedEvent.from_wire(1, 0.003, "frame", "c2s", frame(["71", "2", "41", ""])),
        RecordedEvent.from_wire(1, 0.004, "frame", "s2c", frame(["15", "1", "DU1234567"])),
        RecordedEvent.from_wire(1, 0.5, "frame", "s2c", struct.pack(">I", 5) + b"1\0\xff\xfe\0"),  # not UTF-8
        RecordedEvent.from_wire(1, 0.6, "frame", "s2c", struct.pack(">I", 3) + b"4\0x"),  # no final NUL
        RecordedEvent(1, 1.25, "close", "c2s"),
        RecordedEvent(2, 0.0, "open"),
        RecordedEvent(2, 0.1, "close", None, note="recorder stopped"),
    ]


def _write(path: Path, events: list[RecordedEvent]) -> None:
    with RecordingWriter(path, upstream="127.0.0.1:7497") as writer:
        writer.write(events)


@pytest.mark.parametrize("name", ["session.ibkr", "session.ibkr.gz"])
def test_round_trip_keeps_every_event_and_its_exact_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    events = _session()
    _write(path, events)
    recording = read_recording(path)
    assert recording.version == 1 and recording.upstream == "127.0.0.1:7497"
    assert list(recording.events) == events
    assert [e.wire() for e in recording.events] == [e.wire() for e in events]
    assert recording.events[5].raw is not None and recording.events[6].raw is not None  # kept only where needed
    assert recording.events[3].raw is None and recording.events[1].raw is None
    assert recording.events[5].wire() == struct.pack(">I", 5) + b"1\0\xff\xfe\0"
    assert [e.line for e in recording.events] == list(range(2, 12))
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_connections_group_the_script_after_the_handshake(tmp_path: Path) -> None:
    path = tmp_path / "s.ibkr"
    _write(path, _session())
    scripts = read_recording(path).connections()
    assert len(scripts) == 1  # connection 2 never completed a handshake
    (script,) = scripts
    assert script.greeting.fields == ("v157..176",) and script.welcome.fields[0] == "176"
    assert [e.kind for e in script.events] == ["frame", "frame", "frame", "frame", "close"]
    assert script.client_frames == 1


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_a_corrupted_line_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ibkr"
    _write(path, _session())
    lines = _lines(path)
    lines[3] = b'{"c": 1, "t": 0.002, "k": "frame", "d": "c2s", "f": ["1", 2]}\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(RecordingFormatError) as caught:
        read_recording(path)
    assert caught.value.line == 4 and caught.value.path == path
    assert f"{path} line 4" in str(caught.value) and "'f' must be a list of strings" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json\n", "not a JSON record"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"c": 0, "t": 1, "k": "open"}\n', "'c' (connection number)"),
        (b'{"c": 1, "t": -1, "k": "open"}\n', "'t' (seconds"),
        (b'{"c": 1, "t": 1, "k": "bogus"}\n', "'k' must be one of"),
        (b'{"c": 1, "t": 9, "k": "frame", "f": ["1"]}\n', "'d' must be"),
        (b'{"c": 1, "t": 9, "k": "frame", "d": "s2c", "f": [], "raw": "%%%"}\n', "'raw' is not valid base64"),
        (b'{"c": 1, "t": 0.0001, "k": "frame", "d": "s2c", "f": ["1"]}\n', "time goes back"),
        (b'{"c": 3, "t": 0.1, "k": "frame", "d": "c2s", "f": ["1"]}\n', "before the client's handshake"),
    ],
)
def test_each_bad_record_is_reported_with_its_line(tmp_path: Path, line: bytes, problem: str) -> None:
    path = tmp_path / "bad.ibkr"
    _write(path, _session()[:5])
    path.write_bytes(path.read_bytes() + line)
    with pytest.raises(RecordingFormatError, match=re.escape(problem)) as caught:
        read_recording(path)
    assert caught.value.line == 7
    assert str(caught.value).startswith(f"recording {path} line 7: ")


def test_events_after_a_close_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.ibkr"
    _write(path, [*_session()[:8], RecordedEvent(1, 2.0, "frame", "s2c", ("4",))])
    with pytest.raises(RecordingFormatError, match="connection 1 has events after its close") as caught:
        read_recording(path)
    assert caught.value.line == 10


def test_a_truncated_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "cut.ibkr"
    _write(path, _session())
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 20])  # cut 20 bytes into the last line
    with pytest.raises(RecordingFormatError, match="cut off") as caught:
        read_recording(path)
    assert caught.value.line == 11 and str(path) in str(caught.value)
    assert "--allow-truncated" in str(caught.value)
    kept = read_recording(path, allow_truncated=True)
    assert list(kept.events) == _session()[:-1]


def test_a_truncated_gzip_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "cut.ibkr.gz"
    events = [RecordedEvent(1, i / 10, "frame", "s2c", ("1", str(i))) for i in range(2000)]
    _write(path, [RecordedEvent.from_wire(1, 0.0, "handshake", "c2s", GREETING), *events])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingFormatError, match="compressed stream is damaged or cut off") as caught:
        read_recording(path)
    assert str(path) in str(caught.value) and caught.value.line > 1
    kept = read_recording(path, allow_truncated=True)
    assert 0 < len(kept.events) < 2001


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"hello\n", "not a .ibkr header"),
        (b'{"format": "other", "version": 1}\n', "not a .ibkr header"),
        (b'{"format": "quanticity.ibkr", "version": 2}\n', "format version 2 is newer"),
    ],
)
def test_a_bad_header_is_reported_on_line_1(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "x.ibkr"
    path.write_bytes(content)
    with pytest.raises(RecordingFormatError, match=problem) as caught:
        read_recording(path)
    assert caught.value.line == 1 and str(path) in str(caught.value)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingFormatError, match="cannot be read") as caught:
        read_recording(tmp_path / "nope.ibkr")
    assert str(tmp_path / "nope.ibkr") in str(caught.value)


def test_an_unwritable_path_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "s.ibkr"
    with pytest.raises(RecordingWriteError, match="No such file or directory") as caught:
        RecordingWriter(target, upstream="h:1")
    assert str(target) in str(caught.value) and "Operator action" in str(caught.value)


def test_an_existing_file_is_not_overwritten_by_default(tmp_path: Path) -> None:
    target = tmp_path / "s.ibkr"
    target.write_bytes(b"precious")
    with pytest.raises(RecordingWriteError, match="the file exists"):
        RecordingWriter(target, upstream="h:1")
    assert target.read_bytes() == b"precious"
    RecordingWriter(target, upstream="h:1", overwrite=True).close()
    assert read_recording(target).events == ()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_a_full_disk_names_the_file() -> None:
    with pytest.raises(RecordingWriteError, match="No space left on device") as caught:
        RecordingWriter(Path("/dev/full"), upstream="h:1", overwrite=True)
    assert "/dev/full" in str(caught.value)


def test_every_write_reaches_the_os_at_once(tmp_path: Path) -> None:
    """What an abrupt stop (no close) leaves behind is readable up to the last write."""
    path = tmp_path / "live.ibkr.gz"
    writer = RecordingWriter(path, upstream="h:1")
    writer.write([RecordedEvent.from_wire(1, 0.0, "handshake", "c2s", GREETING)])
    writer.write([RecordedEvent(1, 0.5, "frame", "s2c", ("4", "2"))])
    # No close(): the gzip trailer is missing, as after a kill.
    kept = read_recording(path, allow_truncated=True)
    assert [e.fields for e in kept.events] == [("v157..176",), ("4", "2")]
    writer.close()


_field_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12)


@given(
    st.lists(st.lists(_field_text, min_size=1, max_size=6), max_size=8),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
)
def test_frames_come_out_whole_however_the_stream_is_chunked(messages: list[list[str]], cuts: list[int]) -> None:
    wires = [GREETING] + [frame(m) for m in messages]
    stream = b"".join(wires)
    cutter = FrameCutter(greeting=True)
    out: list[bytes] = []
    position, i = 0, 0
    while position < len(stream):
        size = cuts[i % len(cuts)]
        out += cutter.feed(stream[position : position + size])
        position += size
        i += 1
    assert out == wires and cutter.pending == 0
    assert [split_payload(w[4:]) for w in out[1:]] == messages


def test_an_oversized_length_prefix_is_refused() -> None:
    with pytest.raises(ConnectionError, match="exceeds"):
        FrameCutter().feed(struct.pack(">I", 1 << 30))


def test_differing_fields_matches_exactly_unless_told_otherwise() -> None:
    expected = ("9", "8", "5", "0", "QQQ", "STK")
    assert differing_fields(expected, expected) == ()
    assert differing_fields(expected, ("9", "8", "5", "0", "IWM", "STK")) == (4,)
    assert differing_fields(expected, ("9", "8", "5", "0", "IWM", "STK"), {9: [4]}) == ()
    assert differing_fields(expected, ("9", "8", "5")) == (3, 4, 5)  # a length difference always counts
    assert differing_fields(expected, ("1", "8", "5", "0", "QQQ", "STK"), {9: [0]}) == (0,)  # the id never is lenient
    assert differing_fields(expected, ("9", "8", "5", "0", "IWM", "STK"), {1: [4]}) == (4,)  # other message ids


# ---------------------------------------------------------------------------- proxy against a scripted upstream
async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal TWS: answers the greeting, reads startApi, sends two messages and hangs up."""
    await reader.readexactly(len(GREETING))
    writer.write(frame(["176", "20260303 15:30:00 US/Eastern"]))
    await _read(reader)
    writer.write(frame(["15", "1", "DU1"]) + frame(["9", "1", "1"]))
    await writer.drain()
    writer.close()


async def test_the_proxy_forwards_unchanged_and_records_every_frame(tmp_path: Path) -> None:
    upstream = await asyncio.start_server(_upstream, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    out = tmp_path / "p.ibkr"
    try:
        async with RecordingProxy("127.0.0.1", port, out) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            for piece in (GREETING[:3], GREETING[3:10], GREETING[10:]):  # a greeting split across reads
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.02)
            assert await _read(reader) == ["176", "20260303 15:30:00 US/Eastern"]
            writer.write(frame(["71", "2", "41", ""]))
            assert await _read(reader) == ["15", "1", "DU1"]
            assert await _read(reader) == ["9", "1", "1"]
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the upstream hung up, so does the proxy
            writer.close()
    finally:
        upstream.close()
    assert proxy.connections == 1 and proxy.records == 7
    events = read_recording(out).events
    assert [(e.kind, e.direction) for e in events] == [
        ("open", None),
        ("handshake", "c2s"),
        ("handshake", "s2c"),
        ("frame", "c2s"),
        ("frame", "s2c"),
        ("frame", "s2c"),
        ("close", "s2c"),
    ]
    assert events[1].wire() == GREETING and events[3].fields == ("71", "2", "41", "")
    assert all(e.t >= 0 for e in events) and events[-1].t >= events[1].t


async def test_the_proxy_closes_a_client_whose_upstream_is_unreachable(tmp_path: Path) -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    async with RecordingProxy("127.0.0.1", port, tmp_path / "none.ibkr") as proxy:
        reader, writer = await _connect(proxy.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert proxy.connections == 0 and read_recording(tmp_path / "none.ibkr").events == ()


async def test_the_proxy_refuses_to_start_without_a_writable_recording(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "p.ibkr"
    proxy = RecordingProxy("127.0.0.1", 1, target)
    with pytest.raises(RecordingWriteError) as caught:
        await proxy.start()
    assert str(target) in str(caught.value) and proxy.port == 0


# ---------------------------------------------------------------------------- replay on a raw socket
async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GREETING)
    return reader, writer


async def _read(reader: asyncio.StreamReader) -> list[str]:
    (size,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 5))
    return split_payload(await reader.readexactly(size))


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "script.ibkr"
    _write(
        path,
        [
            RecordedEvent.from_wire(1, 0.0, "handshake", "c2s", GREETING),
            RecordedEvent(1, 0.0, "handshake", "s2c", ("176", "20260303 15:30:00 US/Eastern")),
            RecordedEvent(1, 0.1, "frame", "c2s", ("71", "2", "41", "")),
            RecordedEvent(1, 0.1, "frame", "s2c", ("9", "1", "1")),
            RecordedEvent(1, 0.2, "frame", "c2s", ("9", "8", "5", "0", "QQQ")),
            RecordedEvent(1, 0.4, "frame", "s2c", ("52", "1", "5")),
            RecordedEvent(1, 0.6, "frame", "s2c", ("4", "2", "-1", "2104", "ok", "")),
            RecordedEvent(1, 0.7, "close", "c2s"),
        ],
    )
    return path


async def test_replay_plays_the_script_and_reports_a_divergence(tmp_path: Path) -> None:
    async with ReplayServer(_script(tmp_path), speed=0) as server:
        reader, writer = await _connect(server.port)
        assert await _read(reader) == ["176", "20260303 15:30:00 US/Eastern"]
        writer.write(frame(["71", "2", "41", ""]))
        assert await _read(reader) == ["9", "1", "1"]
        writer.write(frame(["9", "8", "5", "0", "IWM"]))
        error = await _read(reader)
        assert error[:4] == ["4", "2", "5", "321"]  # sent to the diverging request's id
        assert "expected reqContractDetails" in error[4] and "'QQQ'" in error[4] and "'IWM'" in error[4]
        assert await _read(reader) == ["52", "1", "5"]  # continue: the recorded reply follows
        assert await _read(reader) == ["4", "2", "-1", "2104", "ok", ""]
        writer.write(frame(["49", "1"]))  # beyond the end of the recording
        error = await _read(reader)
        assert error[3] == "321" and "after the end of recorded connection 1" in error[4]
        writer.close()
        await asyncio.sleep(0.1)
    (report,) = server.reports
    assert report.finished and report.matched == 2 and report.expected == 2
    assert [d.line for d in report.divergences] == [6, 0]
    assert report.divergences[0].positions == (4,)


async def test_replay_stops_on_divergence_when_asked(tmp_path: Path) -> None:
    async with ReplayServer(_script(tmp_path), speed=0, on_divergence="stop") as server:
        reader, writer = await _connect(server.port)
        await _read(reader)
        writer.write(frame(["71", "2", "99", ""]))
        error = await _read(reader)
        assert error[3] == "321" and "field 2: expected '41', received '99'" in error[4]
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
    assert not server.reports[0].finished and len(server.divergences) == 1


async def test_replay_paces_frames_by_the_recorded_offsets(tmp_path: Path) -> None:
    async with ReplayServer(_script(tmp_path), speed=2.0) as server:
        reader, writer = await _connect(server.port)
        await _read(reader)
        writer.write(frame(["71", "2", "41", ""]))
        await _read(reader)
        loop = asyncio.get_running_loop()
        writer.write(frame(["9", "8", "5", "0", "QQQ"]))
        sent = loop.time()
        await _read(reader)
        await _read(reader)
        # 0.4 s of recording after the request at speed 2 is 0.2 s.
        assert 0.17 <= loop.time() - sent < 1.5
        writer.close()


async def test_each_client_connection_replays_the_next_recorded_one(tmp_path: Path) -> None:
    async with ReplayServer(_script(tmp_path), speed=0) as server:
        for _ in range(2):
            reader, writer = await _connect(server.port)
            assert (await _read(reader))[0] == "176"
            writer.close()
        await asyncio.sleep(0.1)
    assert [r.connection for r in server.reports] == [1, 1]
    assert all(r.client_left_early for r in server.reports)


def test_replay_refuses_a_recording_without_a_handshake(tmp_path: Path) -> None:
    path = tmp_path / "empty.ibkr"
    _write(path, [RecordedEvent(1, 0.0, "open")])
    with pytest.raises(RecordingFormatError, match="no connection with a complete handshake"):
        ReplayServer(path)
    with pytest.raises(ValueError, match="speed"):
        ReplayServer(_script(tmp_path), speed=-1)


def test_gzip_module_reads_what_the_writer_wrote(tmp_path: Path) -> None:
    path = tmp_path / "s.ibkr.gz"
    _write(path, _session())
    assert gzip.decompress(path.read_bytes()).startswith(b'{"format":"quanticity.ibkr","version":1')
