"""Compiled code that every app of one process can share: Jinja templates and URL builders.

A process normally holds one app, but the test suite builds one per test (some 2,000 in a
run), and each new app compiled every template it rendered and every route it registered
again: about a third of the suite's CPU time. Both are pure functions of their inputs, so
this module keeps what one app compiled for the next, keyed by everything the compilation
reads; a changed input (an edited template, another filter set, other Jinja settings) is
simply another key. Nothing here is configuration or data of an app.
"""

from __future__ import annotations

from operator import itemgetter
from threading import Lock

from jinja2.bccache import Bucket, BytecodeCache
from jinja2.utils import _PassArg
from werkzeug.routing import Rule


class TemplateCode(BytecodeCache):
    """Jinja's bytecode cache, in memory and shared by the apps of this process.

    Jinja looks a template's compiled code up by the template's name, file and source
    checksum; Jinja's own caches assume one environment setup per cache, but the generated
    code also depends on the environment (delimiters, autoescaping of that name, the
    filters and tests it calls and how they take their arguments, ...), so those are part
    of the key too.
    """

    def __init__(self) -> None:
        self._code: dict[tuple, object] = {}

    @staticmethod
    def _environment_key(environment, name: str) -> tuple:
        autoescape = environment.autoescape
        if callable(autoescape):
            autoescape = autoescape(name)
        calls = tuple((key, func, _PassArg.from_obj(func)) for key, func in
                      sorted({**environment.filters, **{f"test:{k}": v for k, v in
                                                         environment.tests.items()}}.items(),
                             key=itemgetter(0)))
        return (bool(autoescape), tuple(sorted(environment.extensions)), calls,
                environment.block_start_string, environment.block_end_string,
                environment.variable_start_string, environment.variable_end_string,
                environment.comment_start_string, environment.comment_end_string,
                environment.line_statement_prefix, environment.line_comment_prefix,
                environment.trim_blocks, environment.lstrip_blocks,
                environment.newline_sequence, environment.keep_trailing_newline,
                environment.optimized, environment.finalize, environment.undefined,
                environment.is_async, environment.sandboxed,
                environment.code_generator_class, type(environment))

    def get_bucket(self, environment, name, filename, source) -> Bucket:
        bucket = Bucket(environment, self.get_cache_key(name, filename),
                        self.get_source_checksum(source))
        bucket.shared_key = (bucket.key, bucket.checksum, self._environment_key(environment,
                                                                                name))
        bucket.code = self._code.get(bucket.shared_key)
        return bucket

    def set_bucket(self, bucket: Bucket) -> None:
        self._code[bucket.shared_key] = bucket.code

    def load_bytecode(self, bucket: Bucket) -> None:    # not called: get_bucket does it
        bucket.code = self._code.get(getattr(bucket, "shared_key", None))

    def dump_bytecode(self, bucket: Bucket) -> None:    # not called: set_bucket does it
        self.set_bucket(bucket)


#: the process's compiled templates (``jinja_options["bytecode_cache"]`` of every app)
TEMPLATE_CODE = TemplateCode()


class SharedRule(Rule):
    """A werkzeug ``Rule`` whose URL builder functions are compiled once per process.

    Werkzeug generates and compiles two Python functions for every rule of every app (an
    ``ast`` built, walked and compiled: about half of building an app). The functions
    depend only on what this key holds: the rule's text, its parsed parts (host or
    subdomain included) and the ``append_unknown`` flag. Rules with defaults are compiled
    as usual (a default may be baked in through its converter). The function gets the rule
    itself as its first argument when called, so one function serves every app's rule.
    """

    _builders: dict[tuple, object] = {}
    _lock = Lock()

    def _compile_builder(self, append_unknown: bool = True):
        if self.defaults:
            return super()._compile_builder(append_unknown)
        key = (self.rule, tuple(self._trace), append_unknown)
        builder = self._builders.get(key)
        if builder is None:
            builder = super()._compile_builder(append_unknown)
            with self._lock:
                self._builders.setdefault(key, builder)
        return builder
