# test/tap/tap.sh: TAP output for the bash TAP tests (sourced, not run by
# prove): ok and is number the tests and count the failures in $failed.
n=0
failed=0
ok() {   # ok CONDITION-EXIT-CODE DESCRIPTION
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
is() {   # is GOT EXPECTED DESCRIPTION
    [ "$1" = "$2" ]; local rc=$?
    [ $rc = 0 ] || echo "# got '$1', expected '$2'"
    ok $rc "$3"
}
