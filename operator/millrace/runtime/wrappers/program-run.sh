# millrace: a program step's command, run by the step pod's init container in the step's own image.
#
# Needs only the image's /bin/sh. The arguments come by position, as Windmill's
# `# sandbox <image>` passes them: MILLRACE_ARG_1 .. MILLRACE_ARG_<MILLRACE_ARGC>,
# from the step's Secret. The output and the exit status stay in the working
# directory for the pod's reporting container (program.sh), which always runs:
# this exits 0 whatever the command did.

i=1
set --
while [ "$i" -le "${MILLRACE_ARGC:-0}" ]; do
    eval "set -- \"\$@\" \"\$MILLRACE_ARG_$i\""
    i=$((i + 1))
done
/bin/sh ./main.sh "$@" >.millrace-output 2>&1
echo "$?" >.millrace-status
