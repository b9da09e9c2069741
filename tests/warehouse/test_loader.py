"""load_csv: type inference over every row, all-or-nothing loads, and clear 4xx errors that name the line."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage

from app.errors import APIError
from app.warehouse.engine import ColumnInfo, list_columns, reflect_table, table_exists
from app.warehouse.loader import TableExists, load_csv


def types_of(result) -> dict[str, str]:
    return {c.name: c.type for c in result.columns}


def file_error(call) -> APIError:
    with pytest.raises(APIError) as caught:
        call()
    assert list(caught.value.details["fields"]) == ["file"]
    return caught.value


MIXED = (
    "id,price,active,born,seen_at,name,amount,moment,zip,flag01,card,empty\n"
    "1,9.5,true,2020-01-31,2024-03-01T10:00:00,Ann,3,2024-01-01,01234,0,12345678901234567890,\n"
    ",,,,,,,,,,,\n"
    "-7,1e3,No,1999-12-31,2024-03-01 12:30:15.250,,2.5,2024-01-02 08:00,90210,1,42,\n"
    "+12,-0.25,T,,2024-03-01T10:00:00Z,Bob,,,,1,7,  \n"
)


def test_each_type_is_inferred_from_all_rows_and_empty_cells_are_null(warehouse, write_csv):
    result = load_csv(warehouse.engine, write_csv(MIXED), warehouse.schema, "mixed")

    assert result.row_count == 4
    assert types_of(result) == {
        "id": "integer",
        "price": "float",
        "active": "boolean",
        "born": "date",
        "seen_at": "timestamp",
        "name": "text",
        "amount": "float",  # integers and decimals together
        "moment": "timestamp",  # dates and timestamps together
        "zip": "text",  # leading zeros are kept
        "flag01": "integer",  # 0/1 are numbers, not booleans
        "card": "text",  # too big for int64: the digits matter
        "empty": "text",
    }
    assert list_columns(warehouse.engine, warehouse.schema, "mixed") == result.columns
    rows = warehouse.rows("mixed")
    assert rows[0] == {
        "id": 1,
        "price": 9.5,
        "active": True,
        "born": date(2020, 1, 31),
        "seen_at": datetime(2024, 3, 1, 10, 0),
        "name": "Ann",
        "amount": 3.0,
        "moment": datetime(2024, 1, 1),
        "zip": "01234",
        "flag01": 0,
        "card": "12345678901234567890",
        "empty": None,
    }
    assert set(rows[1].values()) == {None}
    assert rows[2]["active"] is False and rows[3]["active"] is True
    assert rows[2]["price"] == 1000.0 and rows[3]["id"] == 12
    assert rows[2]["seen_at"] == datetime(2024, 3, 1, 12, 30, 15, 250000)


def test_timestamps_with_an_offset_are_stored_in_utc(warehouse, write_csv):
    path = write_csv("at\n2024-03-01T10:00:00+02:00\n2024-03-01T10:00:00Z\n2024-03-01T10:00:00\n")

    load_csv(warehouse.engine, path, warehouse.schema, "times")

    assert [r["at"] for r in warehouse.rows("times")] == [
        datetime(2024, 3, 1, 8, 0),
        datetime(2024, 3, 1, 10, 0),
        datetime(2024, 3, 1, 10, 0),
    ]


def test_one_odd_value_late_in_the_file_makes_the_column_text(warehouse, write_csv):
    body = "".join(f"{i},{i}\n" for i in range(3000))
    result = load_csv(warehouse.engine, write_csv("n,code\n" + body + "3000,n/a\n"), warehouse.schema, "late")

    assert types_of(result) == {"n": "integer", "code": "text"}
    assert warehouse.rows("late", order_by="n")[-1] == {"n": 3000, "code": "n/a"}


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "2024-02-30", "2024-13-01T00:00", "maybe", "1,5"])
def test_values_that_only_look_typed_stay_text(warehouse, write_csv, value):
    result = load_csv(warehouse.engine, write_csv(f'v\n"{value}"\n'), warehouse.schema, "odd")
    assert types_of(result) == {"v": "text"}
    assert warehouse.rows("odd") == [{"v": value}]


def test_headers_are_normalised_into_column_names(warehouse, write_csv):
    result = load_csv(
        warehouse.engine, write_csv("Customer Name,unit-price,Order.Total\nAnn,1,2\n"), warehouse.schema, "h"
    )
    assert [c.name for c in result.columns] == ["customer_name", "unit_price", "order_total"]


def test_quoted_fields_may_hold_commas_quotes_and_newlines(warehouse, write_csv):
    path = write_csv('note,n\n"a, b",1\n"say ""hi""",2\n"two\nlines",3\n\n')
    load_csv(warehouse.engine, path, warehouse.schema, "quoted")
    assert [r["note"] for r in warehouse.rows("quoted", order_by="n")] == ["a, b", 'say "hi"', "two\nlines"]


def test_a_value_that_does_not_convert_aborts_the_whole_load_naming_line_and_column(warehouse, write_csv):
    path = write_csv("name,amount\nAnn,1\nBob,2\nCid,lots\nDee,4\n")

    with pytest.raises(APIError) as caught:
        load_csv(warehouse.engine, path, warehouse.schema, "bad", types={"amount": "integer"}, batch_size=2)

    assert caught.value.status == 400
    assert caught.value.details["line"] == 4 and caught.value.details["column"] == "amount"
    assert "line 4" in caught.value.message and "'amount'" in caught.value.message
    assert not table_exists(warehouse.engine, warehouse.schema, "bad")  # the first batch was rolled back too
    assert sa.inspect(warehouse.engine).get_table_names(schema=warehouse.schema) == []  # no staging table either


def test_replace_swaps_the_table_and_a_failed_replace_keeps_the_old_one(warehouse, write_csv):
    load_csv(warehouse.engine, write_csv("a\n1\n2\n"), warehouse.schema, "t")

    with pytest.raises(APIError):
        load_csv(warehouse.engine, write_csv("a\n3\nx\n"), warehouse.schema, "t", replace=True, types={"a": "integer"})
    assert warehouse.rows("t", order_by="a") == [{"a": 1}, {"a": 2}]

    with pytest.raises(APIError):
        load_csv(warehouse.engine, write_csv("a\n3\n4,5\n"), warehouse.schema, "t", replace=True)
    assert warehouse.rows("t", order_by="a") == [{"a": 1}, {"a": 2}]

    result = load_csv(warehouse.engine, write_csv("b,c\nx,true\n"), warehouse.schema, "t", replace=True)
    assert result.columns == [ColumnInfo("b", "text"), ColumnInfo("c", "boolean")]
    assert warehouse.rows("t") == [{"b": "x", "c": True}]
    assert sa.inspect(warehouse.engine).get_table_names(schema=warehouse.schema) == ["t"]


class Unreadable(io.RawIOBase):
    def read(self, size=-1):
        raise AssertionError("the file was read although the table exists")


def test_an_existing_table_without_replace_raises_table_exists_before_reading_the_file(warehouse, write_csv):
    load_csv(warehouse.engine, write_csv("a\n1\n"), warehouse.schema, "t")

    with pytest.raises(TableExists):
        load_csv(warehouse.engine, Unreadable(), warehouse.schema, "t")
    assert warehouse.rows("t") == [{"a": 1}]


class CreatesTheTableWhileUploading(io.BytesIO):
    """An upload whose bytes arrive while another upload of the same name finishes."""

    def __init__(self, warehouse, content: bytes, rival_path: str):
        super().__init__(content)
        self.warehouse, self.rival_path, self.raced = warehouse, rival_path, False

    def read(self, size=-1):
        if not self.raced:
            self.raced = True
            load_csv(self.warehouse.engine, self.rival_path, self.warehouse.schema, "t")
        return super().read(size)


def test_a_table_created_by_another_upload_meanwhile_raises_table_exists_and_is_kept(warehouse, write_csv):
    upload = CreatesTheTableWhileUploading(warehouse, b"a\n1\n", write_csv("rival\nkept\n"))

    with pytest.raises(TableExists):
        load_csv(warehouse.engine, upload, warehouse.schema, "t")
    assert warehouse.rows("t") == [{"rival": "kept"}]
    assert sa.inspect(warehouse.engine).get_table_names(schema=warehouse.schema) == ["t"]


def test_a_row_with_the_wrong_number_of_fields_names_its_line(warehouse, write_csv):
    error = file_error(lambda: load_csv(warehouse.engine, write_csv("a,b\n1,2\n\n3\n"), warehouse.schema, "t"))
    assert error.status == 400 and error.details["line"] == 4
    assert "line 4 has 1 fields but the header has 2 columns" in error.message
    assert not table_exists(warehouse.engine, warehouse.schema, "t")


def test_line_numbers_count_physical_lines_after_a_multi_line_field(warehouse, write_csv):
    error = file_error(lambda: load_csv(warehouse.engine, write_csv('a,b\n"x\ny",1\n1,2,3\n'), warehouse.schema, "t"))
    assert error.details["line"] == 4


@pytest.mark.parametrize(
    ("header", "column_number", "says"),
    [
        ("a,,c", 2, "is empty"),
        ("a,%%,c", 2, "no letters or digits"),
        ("Name,b,name", 3, "same name as column 1"),
        ("unit price,unit-price", 2, "same name as column 1"),
    ],
)
def test_bad_headers_name_the_column_number(warehouse, write_csv, header, column_number, says):
    error = file_error(lambda: load_csv(warehouse.engine, write_csv(f"{header}\n1,2,3\n"), warehouse.schema, "t"))
    assert error.status == 400 and error.details["column_number"] == column_number
    assert f"column {column_number}" in error.message and says in error.message


@pytest.mark.parametrize("content", [b"", b"\n\nid\n1\n", b"\xef\xbb\xbf"])
def test_an_empty_file_or_missing_header_is_refused(warehouse, write_csv, content):
    error = file_error(lambda: load_csv(warehouse.engine, write_csv(content), warehouse.schema, "t"))
    assert error.status == 400 and error.details["line"] == 1


def test_a_header_only_file_makes_an_empty_table_of_text_columns(warehouse, write_csv):
    result = load_csv(warehouse.engine, write_csv("a,b\n"), warehouse.schema, "t")
    assert result.row_count == 0
    assert list_columns(warehouse.engine, warehouse.schema, "t") == [ColumnInfo("a", "text"), ColumnInfo("b", "text")]


def test_non_utf8_bytes_are_refused_naming_the_line(warehouse, write_csv):
    content = "name,city\nAnn,Paris\nBea,Zürich\n".encode("latin-1")
    error = file_error(lambda: load_csv(warehouse.engine, write_csv(content), warehouse.schema, "t"))
    assert error.status == 400 and error.details["line"] == 3 and "UTF-8" in error.message


def test_a_utf16_file_is_refused(warehouse, write_csv):
    error = file_error(
        lambda: load_csv(warehouse.engine, write_csv("a,b\n1,2\n".encode("utf-16")), warehouse.schema, "t")
    )
    assert error.status == 400 and error.details["line"] == 1


def test_a_utf8_bom_is_ignored(warehouse, write_csv):
    result = load_csv(warehouse.engine, write_csv("\ufeffid,city\n1,Zürich\n"), warehouse.schema, "t")
    assert [c.name for c in result.columns] == ["id", "city"]
    assert warehouse.rows("t") == [{"id": 1, "city": "Zürich"}]


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_files_are_recognised_from_the_header(warehouse, write_csv, delimiter):
    text = f"id{delimiter}price{delimiter}note\n1{delimiter}2,5{delimiter}a,b\n"
    result = load_csv(warehouse.engine, write_csv(text), warehouse.schema, "t")
    assert types_of(result) == {"id": "integer", "price": "text", "note": "text"}
    assert warehouse.rows("t") == [{"id": 1, "price": "2,5", "note": "a,b"}]


def test_max_bytes_refuses_a_larger_stream_or_path_with_413_on_file(warehouse, write_csv):
    content = b"a\n" + b"1\n" * 100
    for source in (io.BytesIO(content), write_csv(content)):
        error = file_error(lambda s=source: load_csv(warehouse.engine, s, warehouse.schema, "t", max_bytes=100))
        assert error.status == 413 and "100 byte limit" in error.message
    assert not table_exists(warehouse.engine, warehouse.schema, "t")

    result = load_csv(warehouse.engine, io.BytesIO(content), warehouse.schema, "t", max_bytes=len(content))
    assert result.row_count == 100


def test_an_uploaded_20000_row_file_loads_with_the_right_count(warehouse):
    lines = ["id,name,score,ok,day"] + [
        f"{i},name {i},{i / 7:.4f},{'yes' if i % 2 else 'no'},2024-01-{i % 28 + 1:02d}" for i in range(20_000)
    ]
    upload = FileStorage(stream=io.BytesIO("\n".join(lines).encode()), filename="big.csv")

    result = load_csv(warehouse.engine, upload, warehouse.schema, "big", batch_size=3000)

    assert result.row_count == 20_000
    assert types_of(result) == {"id": "integer", "name": "text", "score": "float", "ok": "boolean", "day": "date"}
    big = reflect_table(warehouse.engine, warehouse.schema, "big")
    with warehouse.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count(), sa.func.sum(big.c.id))).one()
    assert tuple(count) == (20_000, sum(range(20_000)))


def test_forced_types_must_name_real_columns_and_types(warehouse, write_csv):
    path = write_csv("a\n1\n")
    with pytest.raises(APIError) as caught:
        load_csv(warehouse.engine, path, warehouse.schema, "t", types={"b": "integer"})
    assert caught.value.status == 422 and "types" in caught.value.details["fields"]
    with pytest.raises(APIError) as caught:
        load_csv(warehouse.engine, path, warehouse.schema, "t", types={"a": "money"})
    assert caught.value.status == 422 and "types.a" in caught.value.details["fields"]


def test_a_forced_text_column_keeps_numbers_as_written(warehouse, write_csv):
    result = load_csv(warehouse.engine, write_csv("code\n10\n2\n"), warehouse.schema, "t", types={"code": "text"})
    assert types_of(result) == {"code": "text"}
    assert sorted(r["code"] for r in warehouse.rows("t")) == ["10", "2"]
