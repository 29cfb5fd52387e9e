/*
 * test_csv.c
 *	  Unit tests of the CSV reader (quoting, line ends, UTF-8, errors with
 *	  file and line) and of loading a data directory (order column, text
 *	  column choice, skipped rows, ISO timestamps).
 */
#include "base/csv.h"
#include "data/datadir.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static IsrfEnv env;

static IsrfStatus
parse(const char *text, IsrfCsv *c)
{
	return isrf_csv_parse(&env, "t.csv", text, strlen(text), c);
}

static bool
cell_is(const IsrfCsv *c, int64_t r, int32_t col, const char *want)
{
	return strcmp(isrf_csv_cell(c, r, col), want) == 0 &&
		isrf_csv_cell_len(c, r, col) == strlen(want);
}

static void
test_quoting(void)
{
	IsrfCsv		c;
	const char *text =
		"\xEF\xBB\xBFid,name,note\r\n"
		"1,\"a, b\",\"say \"\"hi\"\"\"\r\n"
		"2,\"two\nlines\",\r\n"
		"\r\n"
		"3,caf\xC3\xA9 \xE2\x98\x95,\"\"\n"
		"4,x\"y,last";

	CHECK(parse(text, &c) == ISRF_OK);
	CHECK(c.n_cols == 3 && c.n_rows == 4);
	CHECK(isrf_csv_column(&c, "id") == 0);	/* BOM dropped */
	CHECK(isrf_csv_column(&c, "note") == 2 && isrf_csv_column(&c, "nope") == -1);
	CHECK(cell_is(&c, 0, 1, "a, b"));
	CHECK(cell_is(&c, 0, 2, "say \"hi\""));
	CHECK(cell_is(&c, 1, 1, "two\nlines"));
	CHECK(cell_is(&c, 1, 2, ""));
	CHECK(cell_is(&c, 2, 1, "caf\xC3\xA9 \xE2\x98\x95"));
	CHECK(cell_is(&c, 2, 2, ""));
	CHECK(cell_is(&c, 3, 1, "x\"y"));	/* literal quote in an unquoted field */
	CHECK(cell_is(&c, 3, 2, "last"));	/* no final newline */
	CHECK(isrf_csv_line(&c, 0) == 2 && isrf_csv_line(&c, 1) == 3);
	CHECK(isrf_csv_line(&c, 2) == 6 && isrf_csv_line(&c, 3) == 7);
	isrf_csv_free(&env, &c);

	/* a trailing comma is an empty last field; a header-only file has no rows */
	CHECK(parse("a,b\n1,\n", &c) == ISRF_OK);
	CHECK(c.n_rows == 1 && cell_is(&c, 0, 0, "1") && cell_is(&c, 0, 1, ""));
	isrf_csv_free(&env, &c);
	CHECK(parse("a,b\n", &c) == ISRF_OK);
	CHECK(c.n_rows == 0 && c.n_cols == 2 && strcmp(c.header[1], "b") == 0);
	isrf_csv_free(&env, &c);
	/* quoted field at the very end without a newline, with an embedded CRLF */
	CHECK(parse("a\n\"x\r\ny\"", &c) == ISRF_OK);
	CHECK(c.n_rows == 1 && cell_is(&c, 0, 0, "x\r\ny"));
	isrf_csv_free(&env, &c);
}

static void
test_errors(void)
{
	IsrfCsv		c;
	static const char nul[] = "a,b\n1,x\0y\n";

	CHECK(parse("a,b\n1,2\n3,\"open\n\n", &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "t.csv") && strstr(env.errmsg, "unterminated") &&
			  strstr(env.errmsg, "line 3"), "%s", env.errmsg);
	CHECK(c.buf == NULL);
	CHECK(parse("a,b\n1,2\n3\n", &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "line 3") && strstr(env.errmsg, "1 fields"), "%s", env.errmsg);
	CHECK(parse("a,b\n1,2,3\n", &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "line 2") && strstr(env.errmsg, "3 fields"), "%s", env.errmsg);
	CHECK(parse("a,b\n\"x\"y,2\n", &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "after a closing quote") && strstr(env.errmsg, "line 2"),
			  "%s", env.errmsg);
	CHECK(parse("", &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "empty"), "%s", env.errmsg);
	CHECK(parse("\n\n", &c) == ISRF_ERR_INVALID);
	CHECK(parse("a,b,a\n", &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "\"a\" appears twice"), "%s", env.errmsg);
	CHECK(isrf_csv_parse(&env, "t.csv", nul, sizeof(nul) - 1, &c) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "NUL"), "%s", env.errmsg);
	CHECK(isrf_csv_read(&env, "/nonexistent/dir/x.csv", &c) == ISRF_ERR_IO);
	CHECK_MSG(strstr(env.errmsg, "/nonexistent/dir/x.csv"), "%s", env.errmsg);
}

static void
test_numbers(void)
{
	IsrfCsv		c;
	int64_t		v = 0;
	double		d = 0;

	CHECK(parse("id,x\n 42 ,1.5e3\n-9223372036854775808,abc\n99999999999999999999,nan\n", &c) == ISRF_OK);
	CHECK(isrf_csv_int64(&env, &c, 0, 0, &v) == ISRF_OK && v == 42);
	CHECK(isrf_csv_double(&env, &c, 0, 1, &d) == ISRF_OK && d == 1500.0);
	CHECK(isrf_csv_int64(&env, &c, 1, 0, &v) == ISRF_OK && v == INT64_MIN);
	CHECK(isrf_csv_int64(&env, &c, 1, 1, &v) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "line 3") && strstr(env.errmsg, "\"x\"") &&
			  strstr(env.errmsg, "abc"), "%s", env.errmsg);
	CHECK(isrf_csv_int64(&env, &c, 2, 0, &v) == ISRF_ERR_INVALID);	/* overflow */
	CHECK(isrf_csv_double(&env, &c, 2, 1, &d) == ISRF_ERR_INVALID); /* nan */
	CHECK(isrf_csv_is_number("1995") && isrf_csv_is_number(" -0.5 "));
	CHECK(!isrf_csv_is_number("a173 a1") && !isrf_csv_is_number("") &&
		  !isrf_csv_is_number("12abc") && !isrf_csv_is_number("inf"));
	isrf_csv_free(&env, &c);

	CHECK(isrf_parse_order_key("1970-01-02", &d) && d == 86400.0);
	CHECK(isrf_parse_order_key("2014-03-01 12:30:00", &d) && d == 1393677000.0);
	CHECK(isrf_parse_order_key("2014-03-01T14:30:00.5+02:00", &d) && d == 1393677000.5);
	CHECK(isrf_parse_order_key("2014-03-01T12:30Z", &d) && d == 1393677000.0);
	CHECK(isrf_parse_order_key("17", &d) && d == 17.0);
	CHECK(!isrf_parse_order_key("yesterday", &d) && !isrf_parse_order_key("2014-13-01", &d));
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char		path[512];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f)
	{
		fputs(text, f);
		fclose(f);
	}
}

static void
remove_dir(const char *dir)
{
	const char *names[] = {"interactions.csv", "ratings.csv", "items.csv",
	"item_descriptions.csv", "user_descriptions.csv", NULL};
	char		path[512];
	int			i;

	for (i = 0; names[i]; i++)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static bool
piece_is(const IsrfTextPiece *p, int64_t id, const char *text)
{
	return p->id == id && p->len == strlen(text) && memcmp(p->text, text, p->len) == 0 &&
		p->weight == 1.0f;
}

static void
test_datadir(void)
{
	char		dir[] = "/tmp/isrf_test_csv_XXXXXX";
	IsrfDataDir d;
	const char *const title_only[] = {"title", "year", NULL};
	const char *const unknown[] = {"title", "colour", NULL};
	const char *const id_name[] = {"item_id", NULL};

	if (mkdtemp(dir) == NULL)
	{
		CHECK_MSG(false, "mkdtemp failed");
		return;
	}
	CHECK(isrf_datadir_load(&env, dir, NULL, &d) == ISRF_ERR_IO);
	CHECK_MSG(strstr(env.errmsg, "neither interactions.csv nor ratings.csv"), "%s", env.errmsg);

	write_file(dir, "ratings.csv",
			   "user_id,item_id,rating,timestamp\n"
			   "1,10,5,2014-01-02\n"
			   "1,11,3,2014-01-01T00:00:00Z\n"
			   "2,12,4,\n"
			   "2,,4,5\n"
			   "3,77,1,7\n");
	write_file(dir, "items.csv",
			   "item_id,title,year,code\n"
			   "10,\"Heat, the film\",1995,\n"
			   "11,,1996,B00X\n"
			   "12,Up,,\n"
			   ",orphan,2000,\n");
	write_file(dir, "user_descriptions.csv", "user_id,interests\n1,\"noir, crime\"\n2,  \n");

	CHECK(isrf_datadir_load(&env, dir, NULL, &d) == ISRF_OK);
	CHECK(strcmp(d.interactions_file, "ratings.csv") == 0);
	CHECK(strcmp(d.order_column, "timestamp") == 0);
	/* rows 3 and 4 have empty order / item; item 77 is not in items.csv */
	CHECK(d.corpus.rows.n == 2 && d.n_skipped_unknown_item == 1);
	CHECK(d.n_skipped_null == 3);	/* two ratings rows, one items row */
	CHECK(d.corpus.rows.item_id[0] == 10 && d.corpus.rows.order[0] == 1388620800.0);
	CHECK(d.corpus.rows.item_id[1] == 11 && d.corpus.rows.order[1] == 1388534400.0);
	CHECK(d.corpus.n_catalogue == 3 && d.corpus.catalogue_ids[2] == 12);
	/* text: title and code (not the all-numeric year); empty cells are not pieces */
	CHECK_MSG(strcmp(d.text_columns, "items.title, items.code, user_descriptions.interests") == 0,
			  "%s", d.text_columns);
	CHECK(d.corpus.n_item_text == 3);
	CHECK(piece_is(&d.corpus.item_text[0], 10, "Heat, the film"));
	CHECK(piece_is(&d.corpus.item_text[1], 11, "B00X"));
	CHECK(piece_is(&d.corpus.item_text[2], 12, "Up"));
	CHECK(d.corpus.n_user_text == 1 && piece_is(&d.corpus.user_text[0], 1, "noir, crime"));
	isrf_datadir_free(&env, &d);
	CHECK(d.corpus.item_text == NULL);

	/* named columns: the numeric year is used when asked for */
	CHECK(isrf_datadir_load(&env, dir, title_only, &d) == ISRF_OK);
	CHECK(d.corpus.n_item_text == 4 && d.corpus.n_user_text == 0);
	CHECK(piece_is(&d.corpus.item_text[1], 10, "1995"));
	isrf_datadir_free(&env, &d);
	CHECK(isrf_datadir_load(&env, dir, unknown, &d) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "\"colour\""), "%s", env.errmsg);
	CHECK(isrf_datadir_load(&env, dir, id_name, &d) == ISRF_ERR_INVALID);

	/* interactions.csv wins over ratings.csv; bad order values are errors */
	write_file(dir, "interactions.csv", "user_id,item_id,position\n1,10,1\n1,11,soon\n");
	CHECK(isrf_datadir_load(&env, dir, NULL, &d) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "interactions.csv: line 3") && strstr(env.errmsg, "soon"),
			  "%s", env.errmsg);
	write_file(dir, "interactions.csv", "user_id,item_id,position\n1,10,x1\n");
	CHECK(isrf_datadir_load(&env, dir, NULL, &d) == ISRF_ERR_INVALID);
	write_file(dir, "interactions.csv", "user_id,item_id\n2,12\n1,10\n");
	CHECK(isrf_datadir_load(&env, dir, NULL, &d) == ISRF_OK);
	CHECK(d.order_column[0] == '\0' && d.corpus.rows.n == 2 &&
		  d.corpus.rows.order[0] == 0.0 && d.corpus.rows.order[1] == 1.0);
	isrf_datadir_free(&env, &d);
	write_file(dir, "interactions.csv", "user,item_id,ts\n1,10,1\n");
	CHECK(isrf_datadir_load(&env, dir, NULL, &d) == ISRF_ERR_INVALID);
	CHECK_MSG(strstr(env.errmsg, "user_id"), "%s", env.errmsg);
	remove_dir(dir);
}

int
main(void)
{
	isrf_env_init_malloc(&env);
	test_quoting();
	test_errors();
	test_numbers();
	test_datadir();
	UNIT_END("test_csv");
}
