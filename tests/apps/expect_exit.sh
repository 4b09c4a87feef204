#!/bin/sh
# Usage: expect_exit.sh STATUS COMMAND...  Runs COMMAND; prints its output only if it exits with STATUS, so a
# test's PASS_REGULAR_EXPRESSION on that output checks both the status and the message.
want="$1"
shift
out="$("$@" 2>&1)"
got=$?
if [ "$got" -eq "$want" ]; then printf '%s\n' "$out"; else echo "exit status $got, expected $want"; exit 1; fi
