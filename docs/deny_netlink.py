#!/usr/bin/env python3
"""Runs a command with socket(AF_NETLINK, ...) refused by a seccomp filter,
the way systemd's RestrictAddressFamilies= (without AF_NETLINK) or a
container's seccomp profile refuses it: the call fails with EAFNOSUPPORT.
Used in docs/troubleshooting.md to show what the plugin does then.

    python3 docs/deny_netlink.py /usr/sbin/collectd -f -C collectd.conf

Needs libseccomp.so.2 (Debian: libseccomp2, normally installed).
"""
import ctypes
import errno
import os
import socket
import sys

lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)


class ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000  # | errno
SCMP_CMP_EQ = 4
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(ArgCmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]

ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
nr = lib.seccomp_syscall_resolve_name(b"socket")
cmp = (ArgCmp * 1)(ArgCmp(0, SCMP_CMP_EQ, socket.AF_NETLINK, 0))
if lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO | errno.EAFNOSUPPORT, nr, 1, cmp) != 0:
    sys.exit("seccomp_rule_add_array failed")
if lib.seccomp_load(ctx) != 0:
    sys.exit("seccomp_load failed")
os.execvp(sys.argv[1], sys.argv[1:])
