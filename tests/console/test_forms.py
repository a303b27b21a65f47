"""Settings forms generated from schemas, and submitted forms read back: pure functions."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from werkzeug.datastructures import MultiDict

from gateway.console.forms import errors_by_field, form_data, form_fields
from gateway.couriers.gosend.adapter import GoSendConfigSchema
from gateway.settings import CourierSettingsSchema, ServiceSettingsSchema


def by_path(form_fields_):
    out = {}
    for field in form_fields_:
        out[field.path] = field
        out.update(by_path(field.children))
    return out


class ExampleSchema(Schema):
    mode = fields.String(load_default="fast", validate=validate.OneOf(["fast", "slow"]),
                         metadata={"description": "How to go."})
    places = fields.List(fields.String(), load_default=list)
    api_secret = fields.String(required=True)
    base_url = fields.String(required=True)


def courier_fields(section):
    return form_fields([CourierSettingsSchema(), GoSendConfigSchema()], section)


def test_each_kind_of_schema_field_gets_its_kind_of_input():
    found = by_path(form_fields([CourierSettingsSchema(), ExampleSchema()],
                                {"timeout_seconds": 5, "places": ["a", "b"]}))
    assert found["enabled"].kind == "checkbox" and found["enabled"].value is True
    assert (found["timeout_seconds"].kind, found["timeout_seconds"].value) == ("number", "5")
    assert found["circuit"].kind == "group"
    assert (found["circuit.failure_threshold"].kind, found["circuit.failure_threshold"].step,
            found["circuit.failure_threshold"].default) == ("number", "1", "5")
    assert found["adapter"].kind == "text"
    assert (found["mode"].kind, found["mode"].choices) == ("select", ("fast", "slow"))
    assert found["mode"].help == "How to go." and found["mode"].label == "Mode"
    assert found["places"].kind == "yaml" and found["places"].value == "- a\n- b\n"
    assert found["sandbox"].help.startswith("This entry talks to a simulator")


def test_a_secret_shows_only_that_it_is_set_and_a_deploy_reference_only_keep_or_value():
    found = by_path(courier_fields({
        "pass_key": {"$env": "GOSEND_PASS_KEY"}, "webhook_token": "literal-token-value-123",
        "base_url": {"$env": "GOSEND_URL", "default": "http://127.0.0.1:8181"},
        "client_id": "engine"}))
    assert (found["pass_key"].source, found["pass_key"].value) == ("keep", "")
    assert found["pass_key"].reference_name == ""
    assert found["pass_key"].secret and "value" not in found["pass_key"].sources
    token = found["webhook_token"]
    assert (token.source, token.value, token.sources) == ("keep", "", ("keep", "env", "file"))
    url = found["base_url"]
    assert (url.source, url.value, url.reference_kind, url.reference_name) == (
        "keep", "", "env", "GOSEND_URL")
    assert url.sources == ("keep", "value") and not url.secret
    assert not found["client_id"].referable and found["client_id"].value == "engine"


def test_a_submitted_form_changes_what_it_names_and_keeps_the_rest():
    original = {"adapter": "gosend", "sandbox": True, "timeout_seconds": 5,
                "pass_key": {"$env": "GOSEND_PASS_KEY", "default": "x"},
                "webhook_token": "literal-token-value-123", "extra": 1}
    form = MultiDict([("timeout_seconds", "7.5"), ("circuit.failure_threshold", "3"),
                      ("sandbox", "false"), ("pass_key:source", "env"),
                      ("pass_key", "OTHER_PASS_KEY"), ("webhook_token:source", "keep"),
                      ("webhook_token", "typed but ignored")])
    data, problems = form_data(courier_fields(original), form, original)
    assert problems == []
    assert data == {"adapter": "gosend", "sandbox": False, "timeout_seconds": 7.5,
                    "circuit": {"failure_threshold": 3},
                    "pass_key": {"$env": "OTHER_PASS_KEY", "default": "x"},
                    "webhook_token": "literal-token-value-123", "extra": 1}


def test_checkboxes_empty_inputs_and_numbers_read_back_as_the_schema_expects():
    original = {"enabled": True, "retention_days": 30, "couriers": ["a"]}
    fields_ = form_fields([ServiceSettingsSchema()], original)
    form = MultiDict([("enabled", "false"), ("retention_days", ""),
                      ("couriers", "- a\n- {b: 2, c: 1}\n")])
    data, problems = form_data(fields_, form, original)
    assert problems == []
    assert data == {"enabled": False, "couriers": ["a", {"b": 2, "c": 1}]}
    # A checked box sends its hidden "false" and its "true".
    checked, _ = form_data(fields_, MultiDict([("enabled", "false"), ("enabled", "true")]), {})
    assert checked == {}                 # the default, not written out
    # A number that is not one is left for the schema to refuse with its own message.
    odd, _ = form_data(fields_, {"retention_days": "soon"}, original)
    assert odd["retention_days"] == "soon"


def test_unreadable_inputs_are_problems_at_their_key_path():
    fields_ = form_fields([ServiceSettingsSchema(), ExampleSchema()], {})
    form = {"couriers": "- [unclosed", "api_secret:source": "env", "api_secret": ""}
    _data, problems = form_data(fields_, form, {})
    assert [path for path, _reason in problems] == ["couriers", "api_secret"]
    assert problems[0][1].startswith("Not valid YAML")
    assert problems[1][1] == "Name an environment variable."


def test_a_literal_secret_inside_yaml_is_hidden_and_kept_when_saved_back():
    class Holder(Schema):
        accounts = fields.List(fields.Dict())

    original = {"accounts": [{"user": "a", "password": "hunter2"}]}
    fields_ = form_fields([Holder()], original)
    assert "hunter2" not in fields_[0].value and "(hidden)" in fields_[0].value
    data, _ = form_data(fields_, {"accounts": fields_[0].value.replace("user: a", "user: b")},
                        original)
    assert data == {"accounts": [{"user": "b", "password": "hunter2"}]}


def test_problems_are_placed_at_the_input_that_holds_their_path():
    fields_ = form_fields([CourierSettingsSchema(), ExampleSchema()], {})
    placed, general = errors_by_field(fields_, [
        ("circuit.failure_threshold", "Must be greater than or equal to 1."),
        ("places.0", "Not a valid string."), ("", "marked sandbox but not local"),
        ("nowhere", "Unknown field.")])
    assert placed == {"circuit.failure_threshold": [("", "Must be greater than or equal to 1.")],
                      "places": [("0", "Not a valid string.")]}
    assert general == ["marked sandbox but not local", "nowhere: Unknown field."]
