"""vertarget / version: the build, the kernel base, the session time and the uptime."""
from datetime import datetime, timedelta

import kdsim

VERTARGET_X64 = (
    "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x64\n"
    "Product: WinNt, suite: TerminalServer SingleUserTS\n"
    "Built by: 7601.17514.amd64fre.win7sp1_rtm.101119-1850\n"
    "Machine Name:\n"
    "Kernel base = 0xfffff800`02a1f000 PsLoadedModuleList = 0xfffff800`02c1f350\n"
    "Debug session time: Tue Feb 22 15:55:42.761 2011 (UTC + 0:00)\n"
    "System Uptime: 0 days 0:00:00.000\n")


def test_vertarget_on_x64(x64):
    assert x64.debugger.execute("vertarget") == VERTARGET_X64


def test_vertarget_on_x86(x86):
    assert x86.debugger.execute("vertarget") == (
        "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x86 compatible\n"
        "Product: WinNt, suite: TerminalServer SingleUserTS\n"
        "Built by: 7601.17514.x86fre.win7sp1_rtm.101119-1850\n"
        "Machine Name:\n"
        "Kernel base = 0x82a1f000 PsLoadedModuleList = 0x82b4f348\n"
        "Debug session time: Tue Feb 22 15:55:42.761 2011 (UTC + 0:00)\n"
        "System Uptime: 0 days 0:00:00.000\n")


def test_vertarget_on_wrk():
    m = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    assert m.debugger.execute("vertarget").splitlines()[:5] == [
        "Windows Server 2003 Kernel Version 3790 (Service Pack 1) MP (2 procs) Free "
        "x86 compatible",
        "Product: Server, suite: TerminalServer SingleUserTS",
        "Built by: 3790.srv03_sp1_rtm.050324-1447",
        "Machine Name:",
        "Kernel base = 0x80800000 PsLoadedModuleList = 0x80930348"]


def test_version_prints_the_target_lines(x64):
    assert x64.debugger.execute("version") == VERTARGET_X64


def test_kernel_base_and_list_head_are_what_the_memory_manager_placed(x64, x86):
    for booted in (x64, x86):
        out = booted.debugger.execute("vertarget")
        line = next(s for s in out.splitlines() if s.startswith("Kernel base"))
        base, head = [int(w[2:].replace("`", ""), 16) for w in line.split() if w[:2] == "0x"]
        assert base == booted.nt.modules[0][2] & ((1 << 8 * booted.nt.profile.pointer_size) - 1)
        assert head == booted.nt.symbols["PsLoadedModuleList"]


def test_processors_time_and_uptime_come_from_guest_memory():
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d = m.debugger
    d.execute("ed nt!KeNumberProcessors 4")
    # KUSER_SHARED_DATA: InterruptTime at +8, SystemTime at +0x14 (LowPart, High1Time)
    up = (86400 + 2 * 3600 + 3 * 60 + 4) * 10_000_000 + 5_670_000   # 1 day 2:03:04.567
    d.execute(f"ed fffff780`00000008 {up & 0xFFFFFFFF:x} {up >> 32:x} {up >> 32:x}")
    # 2020-03-05 06:07:08.009 UTC (a Thursday) in 100 ns units since 1601
    now = ((datetime(2020, 3, 5, 6, 7, 8) - datetime(1601, 1, 1)) // timedelta(microseconds=1)
           + 9000) * 10
    d.execute(f"ed fffff780`00000014 {now & 0xFFFFFFFF:x} {now >> 32:x} {now >> 32:x}")
    out = d.execute("vertarget").splitlines()
    assert out[0] == "Windows 7 Kernel Version 7601 (Service Pack 1) MP (4 procs) Free x64"
    assert out[5] == "Debug session time: Thu Mar  5 06:07:08.009 2020 (UTC + 0:00)"
    assert out[6] == "System Uptime: 1 days 2:03:04.567"
