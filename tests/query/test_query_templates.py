"""Query templates: a shape compiled once answers every later call with the same rows and errors as a statement
compiled for that call alone, per key policy, on SQLite and, when set, PostgreSQL."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.query import KeyPolicy, compile_query, run_query, shape_rows
from app.query.compiler import plan_tables
from app.query.template import MAX_TEMPLATES, TemplateCache
from app.query.validation import MAX_LIST_VALUES, resolve_query_config
from app.warehouse.engine import execute_readonly

ADMIN = KeyPolicy.admin()
MASKED_HIGH = KeyPolicy.from_key_fields(sensitivity_max="high")  # e-mails masked, ssn blocked
DEFAULT_KEY = KeyPolicy.from_key_fields()  # e-mails, phones and ssn blocked, names masked


class Prepared:
    """A query resolved once with its template cache, as serving keeps it (see PreparedQuery)."""

    def __init__(self, warehouse, config: dict, overrides: dict | None = None):
        self.engine, self.config = warehouse.engine, config
        self.plan = resolve_query_config(config, warehouse.engine, "query")
        self.tables = plan_tables(self.plan)
        self.masking = warehouse.masking(overrides)
        self.templates = TemplateCache()

    def call(self, params: dict, policy: KeyPolicy = ADMIN) -> dict:
        """The call's answer through the template cache."""
        return run_query(
            self.engine,
            self.config,
            params,
            policy,
            self.masking,
            10,
            plan=self.plan,
            tables=self.tables,
            templates=self.templates,
        )

    def run(self, params: dict, policy: KeyPolicy = ADMIN):
        """The call's answer through the template cache, or its error as (status, code, message, details)."""
        return _outcome(lambda: self.call(params, policy))

    def fresh(self, params: dict, policy: KeyPolicy = ADMIN):
        """The same call compiled for itself alone and run through SQLAlchemy (compile_query + execute_readonly)."""

        def run() -> dict:
            compiled = compile_query(self.config, self.engine, params, policy, self.masking)
            rows = shape_rows(compiled, execute_readonly(self.engine, compiled.statement, 10))
            return {"rows": rows, "count": len(rows), "limit": compiled.limit, "offset": compiled.offset}

        return _outcome(run)

    def check(self, params: dict, policy: KeyPolicy = ADMIN):
        """Run through the cache and fresh: the same answer or the same error, which is returned."""
        cached = self.run(params, policy)
        assert cached == self.fresh(params, policy), params
        return cached


def _outcome(call):
    try:
        return call()
    except APIError as err:
        return (err.status, err.code, err.message, err.details)


def keys(outcome) -> list:
    return sorted(row["customer_key"] for row in outcome["rows"])


@pytest.mark.parametrize(
    ("column", "op", "values"),
    [
        ("region", "eq", ["EU", "US", "nowhere"]),
        ("region", "neq", ["EU", "US"]),
        ("age", "gt", ["39", "50", "forty"]),
        ("age", "gte", ["39", "34"]),
        ("age", "lt", ["34", "50"]),
        ("age", "lte", ["34", "28"]),
        ("region", "in", ["EU,APAC", "US,EU", "US,nowhere"]),
        ("region", "not_in", ["EU,APAC", "US,EU"]),
        ("age", "between", ["30,40", "40,60", "30"]),
        ("signup_date", "between", ["2023-03-01,2023-12-31", "2024-01-01,2024-12-31", "2023-13-01,2024-01-01"]),
        ("name", "like", ["%o%", "_ve%", "%smith%", "%'%"]),
        ("name", "ilike", ["%SMITH%", "%o%", "bob%"]),
        ("last_seen", "gte", ["2024-02-01T11:30:00", "2024-03-01", "yesterday"]),
        ("active", "eq", ["true", "false", "maybe"]),
        ("balance", "gte", ["100.5", "0", "lots"]),
    ],
)
def test_a_reused_template_answers_each_operator_as_a_fresh_compile(warehouse, column, op, values):
    prepared = Prepared(warehouse, warehouse.config(filters=[{"column": column, "op": op, "param": "p"}]))
    answers = [prepared.check({"p": value}) for value in values]
    assert len(prepared.templates) == 1  # one shape: every value after the first was bound to the same template
    rows = [tuple(keys(answer)) for answer in answers if isinstance(answer, dict)]
    assert len(set(rows)) > 1, "the values changed nothing: they were not bound per call"


@pytest.mark.parametrize("op", ["is_null", "is_not_null"])
def test_null_operators_and_fixed_values_in_a_reused_template(warehouse, op):
    config = warehouse.config(
        filters=[
            {"column": "email", "op": op},
            {"column": "region", "op": "in", "value": ["EU", "US"]},
            {"column": "age", "op": "gt", "param": "min_age"},
        ]
    )
    prepared = Prepared(warehouse, config)
    answers = [prepared.check({"min_age": age}) for age in ("20", "35", "40", "50")]
    assert len(prepared.templates) == 1
    expected = {"is_null": [[], [], [], []], "is_not_null": [[1, 2, 3, 5], [2, 5], [2], []]}[op]
    assert [keys(answer) for answer in answers] == expected


def test_optional_params_present_and_absent(warehouse):
    config = warehouse.config(
        filters=[
            {"column": "region", "op": "eq", "param": "region"},
            {"column": "age", "op": "gt", "param": "min_age"},
        ]
    )
    prepared = Prepared(warehouse, config)
    calls = [{}, {"region": "EU"}, {"min_age": "30"}, {"region": "EU", "min_age": "30"}, {}, {"region": "US"}]
    answers = [keys(prepared.check(params)) for params in calls]
    assert answers == [[1, 2, 3, 4, 5], [1, 3], [1, 2, 4, 5], [1], [1, 2, 3, 4, 5], [2, 5]]
    assert len(prepared.templates) == 4


def test_in_lists_of_different_lengths(warehouse):
    config = warehouse.config(
        filters=[
            {"column": "region", "op": "in", "param": "regions"},
            {"column": "customer_key", "op": "not_in", "param": "not"},
        ]
    )
    prepared = Prepared(warehouse, config)
    calls = [
        ({"regions": "EU"}, [1, 3]),
        ({"regions": "EU,US"}, [1, 2, 3, 5]),
        ({"regions": "EU,US,APAC"}, [1, 2, 3, 4, 5]),
        ({"regions": "US,EU"}, [1, 2, 3, 5]),
        ({"regions": "EU,US,APAC", "not": "1"}, [2, 3, 4, 5]),
        ({"regions": "EU,US,APAC", "not": "1,2,3"}, [4, 5]),
        ({"regions": "APAC", "not": "4,5,6"}, []),
    ]
    for params, expected in calls:
        assert keys(prepared.check(params)) == expected, params
    assert len(prepared.templates) == 6
    too_many = ",".join(["EU"] * (MAX_LIST_VALUES + 1))
    refused = (400, "validation_error", f"param 'regions': at most {MAX_LIST_VALUES} comma-separated values")
    for params in ({"regions": too_many}, {"regions": too_many + ",US"}, {"regions": too_many}):
        assert prepared.check(params)[:3] == refused
    assert len(prepared.templates) == 7  # every over-long list is one shape, whatever its length


def test_limit_and_offset_bounds_and_bad_values(warehouse):
    config = warehouse.config(order_by=[{"column": "customer_key"}], pagination={"default_limit": 2, "max_limit": 3})
    prepared = Prepared(warehouse, config)
    assert keys(prepared.check({})) == [1, 2]
    page = prepared.check({"limit": "3", "offset": "3"})
    assert (keys(page), page["limit"], page["offset"]) == ([4, 5], 3, 3)
    assert keys(prepared.check({"limit": "1", "offset": "1"})) == [2]
    assert prepared.check({"offset": str(2**63 - 1)})["rows"] == []
    for bad in ("0", "4", "-1", "abc", "1.5", "", "99999999999999999999", "１"):
        refused = prepared.check({"limit": bad})
        assert refused[:3] == (400, "validation_error", "param 'limit': expected an integer from 1 to 3"), bad
    for bad in ("-1", "x", "", str(2**63), "1e3"):
        refused = prepared.check({"offset": bad, "limit": "2"})
        assert refused[:3] == (400, "validation_error", "param 'offset': expected an integer of 0 or more"), bad
    assert keys(prepared.check({"limit": "2", "offset": "4"})) == [5]
    assert len(prepared.templates) == 1


def test_two_policies_on_one_prepared_query_never_share_a_template(warehouse):
    config = warehouse.config(
        columns=["customer_key", "name", "email", "ssn"],
        filters=[
            {"column": "email", "op": "eq", "param": "email"},
            {"column": "name", "op": "like", "param": "name"},
        ],
    )
    prepared = Prepared(warehouse, config)
    alice = {"email": "alice@example.com"}
    in_clear = {"customer_key": 1, "name": "Alice Smith", "email": "alice@example.com", "ssn": "111-22-3333"}
    assert prepared.check(alice, ADMIN)["rows"] == [in_clear]
    masked = prepared.check(alice, MASKED_HIGH)["rows"]
    assert masked == [{"customer_key": 1, "name": "Al****", "email": "al****@example.com", "ssn": "[BLOCKED]"}]
    # The default key has e-mails blocked: filtering on one is refused before its value is read.
    assert prepared.check(alice, DEFAULT_KEY)[:2] == (400, "column_not_permitted")
    # A pattern on a masked name is refused for the masked key only; the admin's template still serves in clear.
    assert prepared.check({"name": "A%"}, MASKED_HIGH)[:2] == (400, "column_masked")
    assert keys(prepared.check({"name": "A%"}, ADMIN)) == [1]
    assert prepared.check(alice, ADMIN)["rows"] == [in_clear]
    assert prepared.check(alice, MASKED_HIGH)["rows"] == masked
    narrow = KeyPolicy.from_key_fields(masking_level="unmasked", allowed_columns=["customer_key"])
    assert prepared.check({}, narrow)["rows"][0] == {"customer_key": 1}
    assert prepared.check(alice, narrow)[:2] == (400, "column_not_permitted")
    unmasked = KeyPolicy.from_key_fields(masking_level="unmasked", sensitivity_max="high")
    assert prepared.check(alice, unmasked)["rows"][0]["email"] == "alice@example.com"
    assert prepared.check(alice, MASKED_HIGH)["rows"] == masked


def test_row_scopes_that_python_takes_for_equal_never_share_a_template(warehouse):
    prepared = Prepared(warehouse, warehouse.config(filters=[{"column": "region", "op": "eq", "param": "region"}]))
    scoped_true = KeyPolicy.from_key_fields(row_scope={"active": [True]})
    scoped_one = KeyPolicy.from_key_fields(row_scope={"active": [1]})
    assert scoped_true == scoped_one and hash(scoped_true) == hash(scoped_one)  # the trap
    assert keys(prepared.check({"region": "EU"}, scoped_true)) == [1, 3]
    assert keys(prepared.check({"region": "EU"}, scoped_one)) == []  # 1 is no boolean: the scope matches nothing
    by_key = KeyPolicy.from_key_fields(row_scope={"customer_key": [2]})
    by_float = KeyPolicy.from_key_fields(row_scope={"customer_key": [2.0]})
    assert keys(prepared.check({"region": "US"}, by_key)) == [2]
    assert keys(prepared.check({"region": "US"}, by_float)) == []
    assert keys(prepared.check({"region": "US"}, scoped_true)) == []
    assert keys(prepared.check({}, scoped_true)) == [1, 3, 4]
    assert len(prepared.templates) == 5


def test_lists_of_any_length_share_a_few_templates(warehouse):
    prepared = Prepared(warehouse, warehouse.config(filters=[{"column": "customer_key", "op": "in", "param": "k"}]))
    for n in range(1, 41):
        listed = [str(k) for k in range(n, 0, -1)]  # the last value repeated pads the list to its template's size
        assert keys(prepared.check({"k": ",".join(listed)})) == list(range(1, min(n, 5) + 1))
    excluded = Prepared(warehouse, warehouse.config(filters=[{"column": "region", "op": "not_in", "param": "r"}]))
    assert keys(excluded.check({"r": "EU,US,EU"})) == [4]
    assert keys(excluded.check({"r": "APAC,US,US,US,EU"})) == []
    assert [len(prepared.templates), len(excluded.templates)] == [7, 2]  # 1, 2, 4 ... 64 values; 4 and 8


def test_the_template_cache_is_bounded(warehouse):
    prepared = Prepared(warehouse, warehouse.config(filters=[{"column": "region", "op": "eq", "param": "r"}]))
    for n in range(1, MAX_TEMPLATES + 21):
        policy = KeyPolicy.from_key_fields(row_scope={"customer_key": [n]})  # a key of its own per customer
        assert keys(prepared.run({}, policy)) == ([n] if n <= 5 else [])
    assert len(prepared.templates) == MAX_TEMPLATES


def test_the_least_recently_used_template_goes_first():
    cache, built = TemplateCache(max_entries=3), []

    def get(key):
        return cache.get(key, lambda: built.append(key) or object())

    first = get("a")
    get("b"), get("c")
    assert get("a") is first
    get("d")  # evicts b, the least recently used
    assert built == ["a", "b", "c", "d"]
    assert get("a") is first and get("c") is not None
    get("b")
    assert built == ["a", "b", "c", "d", "b"]
    assert len(cache) == 3


def test_a_failed_build_is_not_kept():
    cache, calls = TemplateCache(), []

    def build():
        calls.append(1)
        raise RuntimeError("warehouse gone")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.get("shape", build)
    assert len(calls) == 2 and len(cache) == 0


def test_a_refused_shape_raises_its_error_on_every_call(warehouse):
    config = warehouse.config(
        columns=["customer_key", "email"], filters=[{"column": "email", "op": "like", "param": "p"}]
    )
    prepared = Prepared(warehouse, config)
    errors = []
    for _ in range(3):
        with pytest.raises(APIError) as err:
            prepared.call({"p": "a%"}, MASKED_HIGH)
        errors.append(err.value)
        assert prepared.run({"p": "a%"}, MASKED_HIGH) == prepared.fresh({"p": "a%"}, MASKED_HIGH)
    assert {(e.status, e.code, e.message) for e in errors} == {
        (
            400,
            "column_masked",
            "param 'p': column email is masked for this key: only eq on a value you already know is accepted",
        )
    }
    assert len({id(e) for e in errors}) == 3  # a fresh error each time, never one shared object
    assert len(prepared.templates) == 1  # the refusal is the shape's, kept and raised again
    assert keys(prepared.check({"p": "a%"}, ADMIN)) == [1]


def test_a_refused_shape_keeps_the_order_of_errors(warehouse):
    config = warehouse.config(
        filters=[
            {"column": "age", "op": "gt", "param": "min_age"},
            {"column": "email", "op": "eq", "param": "email"},
        ],
        order_by=[{"column": "name"}],
    )
    prepared = Prepared(warehouse, config)
    for _ in range(2):
        # The first filter's bad value comes before the second filter's hidden column, as it always did ...
        assert prepared.check({"min_age": "x", "email": "y"}, DEFAULT_KEY)[2] == "param 'min_age': expected an integer"
        refused = prepared.check({"min_age": "30", "email": "y"}, DEFAULT_KEY)
        assert refused[:3] == (400, "column_not_permitted", "param 'email': column email is not available to this key")
        # ... and without the hidden param, the masked sort is refused, before a bad limit is looked at.
        assert prepared.check({"min_age": "x"}, DEFAULT_KEY)[2] == "param 'min_age': expected an integer"
        assert prepared.check({"min_age": "30", "limit": "0"}, DEFAULT_KEY)[:2] == (400, "column_masked")
    assert keys(prepared.check({"min_age": "30", "email": "bob@example.com"})) == [2]


def test_a_required_param_and_an_inapplicable_row_scope_are_refused_on_every_call(warehouse):
    config = warehouse.config(filters=[{"column": "region", "op": "eq", "param": "region", "required": True}])
    prepared = Prepared(warehouse, config)
    for _ in range(2):
        assert prepared.check({})[:3] == (400, "validation_error", "param 'region': is required")
        assert keys(prepared.check({"region": "US"})) == [2, 5]
    stray = KeyPolicy.from_key_fields(row_scope={"tenant_id": [7]})
    for _ in range(2):
        assert prepared.check({"region": "US"}, stray)[:2] == (403, "row_scope_not_applicable")
    assert len(prepared.templates) == 3
