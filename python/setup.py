# SPDX-License-Identifier: MIT
"""Builds the shmalloc module against the installed libshmalloc.

The library is found with pkg-config (set PKG_CONFIG_PATH for a prefix of
your own, and PKG_CONFIG_SYSROOT_DIR for a DESTDIR); its directory goes into
the module's rpath when it is not a system directory.  shma_lookup_wait is
probed for, configure-style (a program that calls it must compile and link):
with it, lookup_wait waits in the daemon (shmalloc.HAVE_LOOKUP_WAIT is True);
without it (an older library), lookup_wait polls.  The NumPy handler
(shmalloc._numpy) is built when numpy is importable at build time.

No pyproject.toml on purpose: pip then builds with the setuptools already
installed (Debian's python3-setuptools) instead of fetching one, so
`pip install ./python` works on a machine without PyPI.
"""
import os
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup

SYSTEM_LIBDIRS = {"/lib", "/usr/lib", "/lib64", "/usr/lib64"}


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "shmalloc"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit("shmalloc: pkg-config cannot find libshmalloc (install it, or set "
                 "PKG_CONFIG_PATH to its lib/pkgconfig): %s" % getattr(e, "stderr", e))
    return out.split()


cflags = pkg_config("--cflags")
libs = pkg_config("--libs")
# The -L directories (PKG_CONFIG_SYSROOT_DIR applied, as --variable=libdir
# is not) that the dynamic loader would not search on its own.
rpath = [f[2:] for f in libs if f.startswith("-L") and f[2:] not in SYSTEM_LIBDIRS
         and not f[2:].startswith("/usr/lib/")]


def has_lookup_wait():
    """Does a program calling shma_lookup_wait compile and link here."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    src = ("#include <shmalloc.h>\n"
           "int main(void) { shma_ref_t r; return shma_lookup_wait(\"x\", &r, 0); }\n")
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "probe.c")
        with open(c, "w") as f:
            f.write(src)
        cmd = [*cc, "-Werror=implicit-function-declaration", *cflags, c,
               "-o", os.path.join(d, "probe"), *libs]
        return subprocess.run(cmd, capture_output=True).returncode == 0


warnings = ["-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
            "-Wno-cast-function-type"]
common = dict(extra_compile_args=[*cflags, *warnings, "-fvisibility=hidden"],
              extra_link_args=[*libs, *("-Wl,-rpath," + d for d in rpath)])
lookup_wait = has_lookup_wait()
print("shmalloc: shma_lookup_wait %s" % ("found" if lookup_wait else
                                         "not in the library: lookup_wait polls"))

# _core's files share names through src/core.h: -fvisibility=hidden keeps
# them inside the module (PyMODINIT_FUNC exports PyInit__core itself).
ext = [Extension("shmalloc._core",
                 ["src/core.c", "src/block.c", "src/handle.c", "src/roots.c",
                  "src/heap.c"],
                 depends=["src/core.h"],
                 define_macros=[("HAVE_LOOKUP_WAIT", "1" if lookup_wait else "0")],
                 **common)]
try:
    import numpy
    ext.append(Extension("shmalloc._numpy", ["src/numpy_handler.c"],
                         include_dirs=[numpy.get_include()], **common))
except ImportError:
    print("shmalloc: numpy not found at build time: no shmalloc.numpy()")

setup(
    name="shmalloc",
    version=subprocess.run(["pkg-config", "--modversion", "shmalloc"],
                           capture_output=True, text=True).stdout.strip() or "0",
    description="NumPy arrays and buffers shared between processes without a copy",
    packages=["shmalloc"],
    package_data={"shmalloc": ["py.typed", "*.pyi"]},
    ext_modules=ext,
    python_requires=">=3.8",
    zip_safe=False,
)
