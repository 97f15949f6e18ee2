# millrace step wrapper for program steps (runtime/program.py): a bash step with `# sandbox <image>`.
#
# Windmill runs the script's body with the image's /bin/sh, its arguments by
# position; the result is found as a bash step's is (result.json, result.out, the
# last line of the output). Locally the command runs here, as a process of this
# machine with its /bin/sh; in a pod it ran before, in the step's image
# (program-run.sh), and this only reports. Usage: program.sh ARGUMENT...

MILLRACE_SHELL=/bin/sh . "${BASH_SOURCE[0]%/*}/bash.sh"
