#!/usr/bin/env bash
# bench/load_dataset.sh NAME DIR: load a data set in ../shared/data form into
# tables of schema NAME (reviews, items, item_descriptions, user_descriptions,
# users — whichever files DIR has) and bind it as isrf dataset NAME.
#
# Connection settings come from the usual PG* environment variables.  Every
# CSV column is typed from its content: all-integer columns become bigint,
# all-numeric ones double precision, the rest text.  Any existing
# schema NAME and dataset NAME are replaced.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 NAME DIR" >&2; exit 2
fi
name=$1
dir=$(cd "$2" && pwd)
if ! [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    echo "$0: NAME must be a lower-case identifier, not \"$name\"" >&2; exit 2
fi
psql_run() { PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql_run <<SQL
CREATE EXTENSION IF NOT EXISTS isrf;
SELECT isrf.drop_dataset('$name', cascade => true) FROM isrf.datasets WHERE name = '$name';
DROP SCHEMA IF EXISTS $name CASCADE;
CREATE SCHEMA $name;
SQL

roles=()
for pair in interactions:reviews ratings:reviews items:items item_descriptions:item_descriptions \
            user_descriptions:user_descriptions users:users; do
    f="$dir/${pair%%:*}.csv"; t=${pair#*:}
    [ -f "$f" ] || continue
    cols=$(head -1 "$f" | tr -d '\r' | awk -F, '{for (i = 1; i <= NF; i++) printf "%s\"%s\" text", (i > 1 ? ", " : ""), $i}')
    echo "loading $f -> $name.$t"
    psql_run <<SQL
CREATE TABLE $name._stage_$t ($cols);
\copy $name._stage_$t FROM '$f' WITH (FORMAT csv, HEADER true)
SQL
    roles+=("$t")
done
if [[ " ${roles[*]} " != *" reviews "* ]]; then
    echo "$0: $dir has neither interactions.csv nor ratings.csv" >&2; exit 1
fi

# type every staged table, index, and bind the dataset, in one session
{
    cat <<'SQL'
CREATE FUNCTION pg_temp.type_table(stage regclass, target text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    col name;
    cols text[] := '{}';
    all_int boolean;
    all_num boolean;
BEGIN
    FOR col IN SELECT attname FROM pg_attribute
                WHERE attrelid = stage AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
        EXECUTE format('SELECT bool_and(%1$I ~ ''^-?[0-9]{1,18}$''),'
                       '       bool_and(%1$I ~ ''^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$'')'
                       '  FROM %2$s WHERE %1$I <> ''''', col, stage) INTO all_int, all_num;
        IF coalesce(all_int, false) THEN
            cols := cols || format('nullif(%1$I, '''')::bigint AS %1$I', col);
        ELSIF coalesce(all_num, false) THEN
            cols := cols || format('nullif(%1$I, '''')::double precision AS %1$I', col);
        ELSE
            cols := cols || format('nullif(%1$I, '''') AS %1$I', col);
        END IF;
    END LOOP;
    EXECUTE format('CREATE TABLE %s AS SELECT %s FROM %s', target, array_to_string(cols, ', '), stage);
    EXECUTE format('DROP TABLE %s', stage);
END
$$;
SQL
    for t in "${roles[@]}"; do
        echo "DO \$\$ BEGIN PERFORM pg_temp.type_table('$name._stage_$t', '$name.$t'); END \$\$;"
    done
    [[ " ${roles[*]} " == *" items "* ]] && echo "ALTER TABLE $name.items ADD PRIMARY KEY (item_id);"
    echo "CREATE INDEX ON $name.reviews (user_id, item_id);"
    echo "ANALYZE;"
    args="'$name', '$name.reviews'"
    for t in items item_descriptions user_descriptions; do
        if [[ " ${roles[*]} " == *" $t "* ]]; then args="$args, $t => '$name.$t'"; fi
    done
    echo "SELECT isrf.create_dataset($args);"
} | psql_run

psql -X -v ON_ERROR_STOP=1 -c "SELECT * FROM isrf.dataset_stats('$name')"
