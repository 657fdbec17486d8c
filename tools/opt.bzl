"""opt_files: the files of some targets, always built as with --config=opt.

`bazel run //:install -- PREFIX` must install the optimised library whatever
compilation mode the user's Bazel defaults to (fastbuild, -O0, unless told
otherwise).  The install target therefore takes the library through this
rule, whose outgoing transition applies what .bazelrc's `build:opt` says:

    build:opt --compilation_mode=opt
    build:opt --copt=-O2

i.e. compilation_mode "opt" and "-O2" appended to the command line's copts
(the user's other copts, -g -gdwarf-4 and any sanitizer flags, stay and come
first, as they do under --config=opt).  A build that already has
--config=opt is left unchanged.  Developer targets (//:magpool,
//:libmagpool.so.1 and the tests) are not affected.

Bazel 4.2.3 builds a Starlark transition's outputs under its own directory,
bazel-out/k8-opt-ST-<hash>/, even when the options come out as they went in,
so the library is compiled there once more; the objects differ from a
--config=opt build's only in the paths their debug info records, and the
code is the same (tests/install_test.sh compares the disassembly).
"""

# Exactly the flags of `build:opt` in .bazelrc: keep the two in step.
OPT_COMPILATION_MODE = "opt"
OPT_COPT = "-O2"

def _opt_transition_impl(settings, attr):
    copts = list(settings["//command_line_option:copt"])
    mode = settings["//command_line_option:compilation_mode"]
    if mode == OPT_COMPILATION_MODE and copts and copts[-1] == OPT_COPT:
        # Already --config=opt (its -O2 is the last copt): same configuration.
        return {
            "//command_line_option:compilation_mode": mode,
            "//command_line_option:copt": copts,
        }
    return {
        "//command_line_option:compilation_mode": OPT_COMPILATION_MODE,
        "//command_line_option:copt": copts + [OPT_COPT],
    }

opt_transition = transition(
    implementation = _opt_transition_impl,
    inputs = [
        "//command_line_option:compilation_mode",
        "//command_line_option:copt",
    ],
    outputs = [
        "//command_line_option:compilation_mode",
        "//command_line_option:copt",
    ],
)

def _opt_files_impl(ctx):
    files = depset(transitive = [d[DefaultInfo].files for d in ctx.attr.srcs])
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files))]

opt_files = rule(
    implementation = _opt_files_impl,
    doc = "The default outputs of `srcs`, built as with --config=opt.",
    attrs = {
        "srcs": attr.label_list(
            cfg = opt_transition,
            allow_files = True,
            mandatory = True,
        ),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
