#!/usr/bin/env python3
"""modbus-sim.py: a Modbus TCP server that plays the park's sensors.

Tests and the demo poll it exactly like real devices or an RS-485 gateway:
one TCP port, any number of unit (slave) ids, each with its own holding and
input registers (all 65536 of each, initially 0). A control port lets a test
change a register or make a unit stop answering while the server runs.

Needs PyPI's pymodbus 3.16 (deploy/setup.sh installs it):

    PYTHONPATH=/opt/parkwatch/python python3 deploy/modbus-sim.py \\
        --port 5020 --unit 1 --unit 2 \\
        --set 1:h:0:u16:523 --set 2:i:10:f32:12.5:little

Options:
    --host ADDR          listen address (default 127.0.0.1)
    --port N             Modbus TCP port (required; 0 picks a free one)
    --unit ID            a unit id 0..255 that answers (repeatable); units
                         named in --set are added too
    --set SPEC           initial value (repeatable), SPEC is
                         UNIT:TABLE:ADDR:TYPE:VALUE[:ORDER] with TABLE
                         h|holding|i|input, TYPE u16|i16|u32|i32|f32 and
                         ORDER big (high word first, default) | little
    --control-port N     control port (default 0: a free one)
    --exit-on-stdin-eof  exit when standard input closes (so a test that
                         dies never leaves the server behind)

Once both ports listen it prints one line and flushes it:

    ready port=<modbus port> control=<control port>

Units that are not configured get exception 0x0B (gateway target device
failed to respond), as an RS-485 gateway answers for an absent device.

Control protocol: plain text over TCP, one command per line, one reply line
per command, "ok ..." or "err <reason>". Commands:

    ping                                   -> ok pong
    set UNIT TABLE ADDR TYPE VALUE [ORDER] -> ok     (as --set, spaces)
    raw UNIT TABLE ADDR WORD [WORD...]     -> ok     (raw 16-bit words)
    get UNIT TABLE ADDR [COUNT]            -> ok WORD ...
    mute UNIT       the unit stops answering (requests time out)
    fail UNIT       the unit answers every request with exception 0x0B
    unmute UNIT     the unit answers normally again (also: ok UNIT)
    stats           -> ok UNIT=REQUESTS ... (requests seen per unit)
    quit            close this control connection
    shutdown        stop the server (exit code 0)

The control channel never crashes the server: every malformed command is
answered with "err" and the connection stays usable.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import struct
import sys
import threading

try:
    import pymodbus
    from pymodbus.constants import ExcCodes
    from pymodbus.exceptions import NoSuchIdException
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"modbus-sim: cannot import pymodbus ({exc}); run deploy/setup.sh and set "
        "PYTHONPATH=/opt/parkwatch/python (pymodbus 3.16 expected)\n"
    )
    sys.exit(2)

REGISTERS = 65536
TABLES = {"h": "h", "holding": "h", "i": "i", "input": "i"}
# Function codes that address the holding registers; 4 reads input registers.
HOLDING_FCS = {3, 6, 16, 22, 23}
TYPES = ("u16", "i16", "u32", "i32", "f32")


class CommandError(Exception):
    """A control command or --set spec that cannot be carried out."""


def encode(dtype: str, text: str, order: str = "big") -> list[int]:
    """The register words of VALUE as TYPE, in ORDER for 32-bit types."""
    if dtype not in TYPES:
        raise CommandError(f"type {dtype!r} is not one of {', '.join(TYPES)}")
    if order not in ("big", "little"):
        raise CommandError(f"word order {order!r} is not big or little")
    try:
        if dtype == "f32":
            value = float(text)
            data = struct.pack(">f", value)
        else:
            value = int(text, 0)
            fmt = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i"}[dtype]
            data = struct.pack(fmt, value)
    except (ValueError, struct.error, OverflowError) as exc:
        raise CommandError(f"value {text!r} does not fit {dtype}: {exc}") from exc
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if order == "little":
        words.reverse()
    return words


def parse_int(text: str, what: str, lo: int, hi: int) -> int:
    try:
        value = int(text, 0)
    except ValueError as exc:
        raise CommandError(f"{what} {text!r} is not an integer") from exc
    if not lo <= value <= hi:
        raise CommandError(f"{what} {value} is not within {lo}..={hi}")
    return value


class Park:
    """Register tables and behaviour of every simulated unit."""

    def __init__(self) -> None:
        self.tables: dict[int, dict[str, dict[int, int]]] = {}
        self.mode: dict[int, str] = {}  # "ok" | "mute" | "fail"
        self.requests: dict[int, int] = {}

    def add_unit(self, unit: int) -> None:
        self.tables.setdefault(unit, {"h": {}, "i": {}})
        self.mode.setdefault(unit, "ok")
        self.requests.setdefault(unit, 0)

    def unit(self, text: str) -> int:
        unit = parse_int(text, "unit", 0, 255)
        if unit not in self.tables:
            known = ", ".join(str(u) for u in sorted(self.tables))
            raise CommandError(f"unit {unit} is not simulated (units: {known})")
        return unit

    def write(self, unit: int, table: str, addr: int, words: list[int]) -> None:
        if table not in TABLES:
            raise CommandError(f"table {table!r} is not h, holding, i or input")
        if addr + len(words) > REGISTERS:
            raise CommandError(f"{len(words)} words at {addr} run past register 65535")
        regs = self.tables[unit][TABLES[table]]
        for i, w in enumerate(words):
            regs[addr + i] = w & 0xFFFF

    def read(self, unit: int, table: str, addr: int, count: int) -> list[int]:
        regs = self.tables[unit][table]
        return [regs.get(addr + i, 0) for i in range(count)]

    def apply_spec(self, spec: str) -> None:
        """UNIT:TABLE:ADDR:TYPE:VALUE[:ORDER] (the --set syntax)."""
        parts = spec.split(":")
        if len(parts) not in (5, 6):
            raise CommandError(
                f"--set {spec!r}: expected UNIT:TABLE:ADDR:TYPE:VALUE[:ORDER]"
            )
        unit = parse_int(parts[0], "unit", 0, 255)
        self.add_unit(unit)
        self.set_value(unit, parts[1:])

    def set_value(self, unit: int, args: list[str]) -> None:
        if len(args) not in (4, 5):
            raise CommandError("expected TABLE ADDR TYPE VALUE [ORDER]")
        table, addr_text, dtype, value = args[:4]
        order = args[4] if len(args) == 5 else "big"
        addr = parse_int(addr_text, "address", 0, REGISTERS - 1)
        self.write(unit, table, addr, encode(dtype, value, order))

    async def action(
        self,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values,
    ):
        """pymodbus calls this before it answers a request for `unit`."""
        self.requests[unit] = self.requests.get(unit, 0) + 1
        mode = self.mode.get(unit, "ok")
        if mode == "mute":
            # The request handler sends nothing for this exception when the
            # server ignores missing devices: the client times out.
            raise NoSuchIdException(f"unit {unit} is muted")
        if mode == "fail":
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = "h" if function_code in HOLDING_FCS else "i"
        if set_values is not None and table == "h":
            words = [int(v) & 0xFFFF for v in set_values]
            self.write(unit, "h", address, words)
        # One shared pymodbus block serves both tables; fill the requested
        # window from this unit's table just before pymodbus reads it.
        values = self.read(unit, table, address, count)
        offset = address - start_address
        current_registers[offset : offset + count] = values
        return None

    async def absent(self, *_args):
        """The catch-all device: like a gateway with nothing at that id."""
        return ExcCodes.GATEWAY_NO_RESPONSE

    def device(self, unit: int) -> SimDevice:
        return SimDevice(
            id=unit,
            simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            action=functools.partial(self.action, unit),
        )

    def devices(self) -> list[SimDevice]:
        devs = [self.device(u) for u in sorted(self.tables)]
        if 0 not in self.tables:
            devs.append(
                SimDevice(
                    id=0,
                    simdata=[SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                    action=self.absent,
                )
            )
        return devs

    def command(self, line: str) -> str:
        words = line.split()
        if not words:
            raise CommandError("empty command")
        cmd, args = words[0].lower(), words[1:]
        if cmd == "ping":
            return "ok pong"
        if cmd == "set":
            if len(args) < 1:
                raise CommandError("usage: set UNIT TABLE ADDR TYPE VALUE [ORDER]")
            self.set_value(self.unit(args[0]), args[1:])
            return "ok"
        if cmd == "raw":
            if len(args) < 4:
                raise CommandError("usage: raw UNIT TABLE ADDR WORD [WORD...]")
            unit = self.unit(args[0])
            addr = parse_int(args[2], "address", 0, REGISTERS - 1)
            words = [parse_int(w, "word", 0, 0xFFFF) for w in args[3:]]
            self.write(unit, args[1], addr, words)
            return "ok"
        if cmd == "get":
            if len(args) not in (3, 4):
                raise CommandError("usage: get UNIT TABLE ADDR [COUNT]")
            unit = self.unit(args[0])
            if args[1] not in TABLES:
                raise CommandError(f"table {args[1]!r} is not h, holding, i or input")
            addr = parse_int(args[2], "address", 0, REGISTERS - 1)
            count = parse_int(args[3], "count", 1, 125) if len(args) == 4 else 1
            if addr + count > REGISTERS:
                raise CommandError(f"{count} registers at {addr} run past 65535")
            words = self.read(unit, TABLES[args[1]], addr, count)
            return "ok " + " ".join(str(w) for w in words)
        if cmd in ("mute", "fail", "unmute", "ok"):
            if len(args) != 1:
                raise CommandError(f"usage: {cmd} UNIT")
            unit = self.unit(args[0])
            self.mode[unit] = {"unmute": "ok"}.get(cmd, cmd)
            return "ok"
        if cmd == "stats":
            return "ok " + " ".join(f"{u}={n}" for u, n in sorted(self.requests.items()))
        raise CommandError(f"unknown command {cmd!r}")


async def control_client(park: Park, stop: asyncio.Event, reader, writer) -> None:
    try:
        while True:
            try:
                raw = await reader.readline()
            except (ConnectionError, asyncio.LimitOverrunError, ValueError):
                break
            if not raw:
                break
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if line.lower() == "quit":
                break
            if line.lower() == "shutdown":
                writer.write(b"ok\n")
                await writer.drain()
                stop.set()
                break
            try:
                reply = park.command(line)
            except CommandError as exc:
                reply = f"err {exc}"
            except Exception as exc:  # noqa: BLE001 - never let a command kill us
                reply = f"err internal: {exc!r}"
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Sets `stop` when standard input reaches end of file."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


def bound_port(server: ModbusTcpServer, fallback: int) -> int:
    """The port the Modbus listener actually bound (for --port 0)."""
    transport = getattr(server, "transport", None)
    sockets = getattr(transport, "sockets", None) or []
    for sock in sockets:
        try:
            return int(sock.getsockname()[1])
        except (OSError, IndexError, TypeError):
            continue
    return fallback


async def run(args: argparse.Namespace, park: Park) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()

    server = ModbusTcpServer(
        park.devices(),
        address=(args.host, args.port),
        ignore_missing_devices=True,
    )
    try:
        await server.serve_forever(background=True)
    except (RuntimeError, OSError) as exc:
        sys.stderr.write(f"modbus-sim: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    control = await asyncio.start_server(
        functools.partial(control_client, park, stop), args.host, args.control_port
    )
    control_port = control.sockets[0].getsockname()[1]
    port = bound_port(server, args.port)
    units = ",".join(str(u) for u in sorted(park.tables))
    print(f"ready port={port} control={control_port} units={units}", flush=True)

    await stop.wait()
    control.close()
    await server.shutdown()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Modbus TCP server that plays the park's sensors.",
        epilog="See the module docstring (top of this file) for the control protocol.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unit", type=int, action="append", default=[])
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="log pymodbus debug output")
    args = parser.parse_args()

    # pymodbus logs an error line per ignored request otherwise.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        pymodbus.pymodbus_apply_logging_config(
            logging.DEBUG if args.verbose else logging.CRITICAL
        )
    except AttributeError:
        pass

    park = Park()
    try:
        for unit in args.unit:
            if not 0 <= unit <= 255:
                raise CommandError(f"--unit {unit} is not within 0..=255")
            park.add_unit(unit)
        for spec in args.sets:
            park.apply_spec(spec)
    except CommandError as exc:
        sys.stderr.write(f"modbus-sim: {exc}\n")
        return 2
    if not park.tables:
        sys.stderr.write("modbus-sim: give at least one --unit or --set\n")
        return 2
    try:
        return asyncio.run(run(args, park))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
