"""Static checks of a flow, before anything runs.

Reports every problem it finds (not just the first), each naming the flow,
the step (module path) and the field. Options that would change a result
and are not implemented are errors; cosmetic or scheduling-only options
that a local run cannot honour are warnings (see `fields`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from ..errors import Problem
from ..expressions import ExpressionError, Sandbox, referenced_results
from ..model.flow import (
    AiAgent,
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    JavascriptTransform,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    WhileloopFlow,
)
from ..hub import is_hub_path
from ..model.loader import LoadedFlow
from ..runtime import go_signature, program, signature
from ..runtime.imports import inline_relative_imports
from ..runtime.languages import SUPPORTED, Language, runtime_language
from .cycles import call_cycles
from .fields import check_flow_fields, check_module_fields
from .inputs import check_schema
from .library import Library, ScriptSource, missing_imports
from .roots import shares_root
from .paths import FAILURE_MODULE_PATH, PREPROCESSOR_PATH

# Languages whose wrapper can call a function other than main.
PREPROCESSOR_LANGUAGES = ("python3", "bun", "deno", "nativets")

HUB_HINT = (": a Hub path resolves from the --scripts folders and the catalog shipped with millrace "
            "(in the cluster: the chart's hub.namespace, then the shipped catalog)")
# Module paths join ids with '/' (`loop/3/inner`): an id holding one would name another step.
_PATH_SEPARATOR = "/"


@dataclass
class _Checker:
    name: str
    flow: OpenFlow
    library: Library
    sandbox: Sandbox
    paths_known: bool = True  # False: the scripts and flows by path are not resolved (the admission webhook)
    missing_steps: set[str] = field(default_factory=set)
    default_ids: frozenset[str] = frozenset()
    problems: list[Problem] = field(default_factory=list)
    seen_ids: dict[str, str] = field(default_factory=dict)
    # The ids of steps inside parallel for loops: visible only within their iteration.
    isolated: set[str] = field(default_factory=set)
    # Where each module was met (keyed by identity): a cycle is reported at its step.
    paths_by_module: dict[int, str] = field(default_factory=dict)

    def error(self, message: str, step: str | None = None, fld: str | None = None) -> None:
        self.problems.append(Problem(self.name, message, step=step, field=fld))

    def warn(self, message: str, step: str | None = None, fld: str | None = None) -> None:
        self.problems.append(Problem(self.name, message, step=step, field=fld, warning=True))

    # --- flow level -------------------------------------------------------------

    def check(self) -> None:
        value = self.flow.value
        schema_problem = check_schema(self.flow.schema_)
        if schema_problem:
            self.error(schema_problem, fld="schema")
        check_flow_fields(self.flow, self.error, self.warn)
        all_ids = self._collect_ids(value.modules)
        self._sequence(value.modules, "", set())
        if value.failure_module is not None:
            self._module(value.failure_module, FAILURE_MODULE_PATH, all_ids)
        if value.preprocessor_module is not None:
            self._preprocessor(value.preprocessor_module)
        self._cycles()

    def _preprocessor(self, module: FlowModule) -> None:
        """A script whose `preprocessor` function maps a trigger's event to the flow input."""
        self._module(module, PREPROCESSOR_PATH, set())
        language = module.value.language if isinstance(module.value, RawScript) else None
        if isinstance(module.value, PathScript):
            script = self.library.scripts.get(module.value.path)
            language = script.language if script else None
        elif not isinstance(module.value, RawScript):
            self.error(f"a preprocessor is a script, not a '{module.value.type}' module",
                       step=PREPROCESSOR_PATH, fld="value.type")
            return
        if language is not None and language not in PREPROCESSOR_LANGUAGES:
            self.error(f"a preprocessor in '{language}' cannot be called (use {', '.join(PREPROCESSOR_LANGUAGES)})",
                       step=PREPROCESSOR_PATH, fld="value.language")

    def _cycles(self) -> None:
        for module, cycle in call_cycles(self.flow, self.library):
            path = self.paths_by_module.get(id(module), module.id)
            self.error(f"the flow calls itself: {' -> '.join(cycle)}", step=path, fld="value.path")

    def _collect_ids(self, modules: list[FlowModule]) -> set[str]:
        ids: set[str] = set()
        for module in modules:
            ids.add(module.id)
            for children in _children(module):
                ids |= self._collect_ids(children)
        return ids

    # --- modules ----------------------------------------------------------------

    def _sequence(self, modules: list[FlowModule], prefix: str, visible: set[str]) -> set[str]:
        """Check a sequence; return the ids visible after it."""
        visible = set(visible)
        for i, module in enumerate(modules):
            path = f"{prefix}/{module.id}" if prefix else module.id
            visible |= self._module(module, path, visible)
            if i == len(modules) - 1:
                self._unfollowed(module, path)
        return visible

    def _unfollowed(self, module: FlowModule, path: str) -> None:
        """Windmill sleeps and waits for approvals as it starts the next module of the same (sub-)flow
        (worker_flow.rs push_next_flow_job): on a last module they do nothing."""
        if module.suspend is not None and (module.suspend.required_events or 0) > 0:
            self.warn("a suspend on the last step of a flow, branch or loop body is not waited for, as in Windmill "
                      "(the wait happens as the next step starts): add a step after it", step=path, fld="suspend")
        if module.sleep is not None:
            self.warn("a sleep on the last step of a flow, branch or loop body does nothing, as in Windmill "
                      "(the sleep happens before the next step starts)", step=path, fld="sleep")

    def _module(self, module: FlowModule, path: str, visible: set[str]) -> set[str]:
        """Check one module; return the ids it makes visible to later modules."""
        self.paths_by_module[id(module)] = path
        self._id(module, path)
        check_module_fields(module, path, self.error, self.warn)
        self._step_kind(module, path)
        for fld, expr in _expressions(module):
            self._expression(expr, path, fld, module.id, visible)
        for name in getattr(module.value, "input_transforms", None) or {}:
            if name in ("true", "false"):
                self.warn(f"an input named '{name}' is likely a YAML boolean: kubectl reads unquoted "
                          "y, n, yes, no, on and off as booleans; quote the name", step=path,
                          fld=f"value.input_transforms.{name}")
        made_visible = {module.id}
        value = module.value
        # Which inner steps stay visible follows Windmill's root jobs (engine/scope.py).
        if isinstance(value, (ForloopFlow, WhileloopFlow)):
            # The loop's own id gives the results of the iterations finished so far.
            if shares_root(module):
                # Inside the body, a step may read any body step's result from the previous
                # iteration; after the loop, the body's results are the last iteration's.
                body_ids = self._collect_ids(value.modules)
                self._sequence(value.modules, f"{path}/*", visible | body_ids | {module.id})
                made_visible |= body_ids
            else:
                self._sequence(value.modules, f"{path}/*", visible | {module.id})
                self.isolated |= self._collect_ids(value.modules)
        elif isinstance(value, BranchOne):
            for i, branch in enumerate(value.branches):
                made_visible |= self._sequence(branch.modules, f"{path}/{i}", visible)
            made_visible |= self._sequence(value.default, f"{path}/default", visible)
        elif isinstance(value, BranchAll):
            # A sequential branch-all's branch sees the branches before it; parallel ones only what came before.
            seen = set(visible)
            for i, arm in enumerate(value.branches):
                ended = self._sequence(arm.modules, f"{path}/{i}", visible if value.parallel else seen)
                made_visible |= ended
                seen |= ended
        return made_visible

    def _id(self, module: FlowModule, path: str) -> None:
        if module.id in self.seen_ids:
            self.error(f"duplicate step id '{module.id}' (also used at '{self.seen_ids[module.id]}')", step=path, fld="id")
        else:
            self.seen_ids[module.id] = path
        if _PATH_SEPARATOR in module.id:
            self.error(f"a step id cannot contain '{_PATH_SEPARATOR}': step paths join ids with it "
                       "(`loop/3/step`), so the id would name another step", step=path, fld="id")
        if module.id == FAILURE_MODULE_PATH and path == module.id and module is not self.flow.value.failure_module:
            self.error(f"the id '{FAILURE_MODULE_PATH}' is the failure module's path: give this step another id",
                       step=path, fld="id")
        if module.id in self.default_ids:
            self.warn(f"the step has no 'id': Windmill gives it a random one; millrace names it '{module.id}' "
                      "from its position", step=path, fld="id")

    def _step_kind(self, module: FlowModule, path: str) -> None:
        value = module.value
        if isinstance(value, AiAgent):
            self.error("module type 'aiagent' is not supported", step=path, fld="value.type")
        elif isinstance(value, RawScript):
            if value.language not in SUPPORTED:
                self.error(
                    f"language '{value.language}' is not supported (supported: {', '.join(sorted(SUPPORTED))})",
                    step=path,
                    fld="value.language",
                )
            if value.content is None and module.id not in self.missing_steps:
                self.error("the script body is not available", step=path, fld="value.content")
            elif value.content is not None and value.language == "go":
                try:
                    go_signature.parameter_names(value.content)
                except go_signature.GoSignatureError as problem:
                    self.error(str(problem), step=path, fld="value.content")
            elif value.content is not None and value.language == "bash":
                self._bash_annotations(value.content, path, "value.content")
            language = runtime_language(value.language)
            if value.content is not None and language is not None:
                self._imports(language, value.content, None, path, "value.content")
        elif isinstance(value, PathScript):
            script = self.library.scripts.get(value.path)
            if script is None and not self.paths_known:
                return
            if script is None:
                self.error(f"script '{value.path}' was not found{HUB_HINT if is_hub_path(value.path) else ''}",
                           step=path, fld="value.path")
            else:
                if script.language == "bash":
                    self._bash_annotations(script.content, path, "value.path")
                if path != PREPROCESSOR_PATH:  # a preprocessor's function takes the trigger's event
                    self._arguments(value, script, path)
                self._imports(script.language, script.content, value.path, path, "value.path")
        elif isinstance(value, PathFlow):
            if value.path not in self.library.flows and self.paths_known:
                self.error(f"flow '{value.path}' was not found", step=path, fld="value.path")

    def _imports(self, language: Language, code: str, own_path: str | None, path: str, fld: str) -> None:
        """Workspace scripts the code imports (runtime/imports.py) that are not there: the step could only fail."""
        if own_path is None:
            for written in inline_relative_imports(language, code):
                self.error(f"the relative import '{written}' names no script: millrace resolves relative imports "
                           "only in scripts run by path (an inline step has no workspace path); import it by its "
                           "absolute path (u/... or f/...)", step=path, fld=fld)
        if not self.paths_known:
            return
        for missing in missing_imports(language, code, self.library.scripts.get, own_path):
            where = f"script '{missing.importer}' imports" if missing.importer else "the step imports"
            why = (f"a {missing.language} script, which a {language} step cannot import" if missing.language
                   else "which is not in the workspace")
            self.error(f"{where} the workspace script '{missing.path}', {why}", step=path, fld=fld)

    def _arguments(self, value: PathScript, script: ScriptSource, path: str) -> None:
        """The step's input transforms against the script's own arguments (runtime/signature.py).

        Windmill refuses a missing argument that has no default only when the script's
        header has `schema_validation`; otherwise main gets a null-like value. It never
        refuses an argument main does not take: the wrapper leaves it out.
        """
        found = signature.signature(script.language, script.content)
        if found is None:
            return
        given = set(value.input_transforms)
        for argument in found.arguments:
            if not argument.required or argument.name in given:
                continue
            fld = f"value.input_transforms.{argument.name}"
            missing = f"script '{value.path}' requires the argument '{argument.name}', which the step does not give"
            if signature.validates_schema(script.language, script.content):
                self.error(f"{missing}: the script's header has `{signature.ANNOTATION}`, so the job would fail "
                           f"with 'Argument {argument.name} is required'", step=path, fld=fld)
            else:
                self.warn(f"{missing}: main gets {signature.MISSING_VALUE[script.language]}, as in Windmill",
                          step=path, fld=fld)
        if not found.open_ended:
            for name in sorted(given - found.names()):
                self.warn(f"script '{value.path}' takes no argument '{name}': it is not passed to main, as in Windmill",
                          step=path, fld=f"value.input_transforms.{name}")

    def _bash_annotations(self, code: str, path: str, fld: str) -> None:
        """`# sandbox <image>` makes a program step (runtime/program.py); Windmill's other bash annotations warn."""
        for finding in program.findings(code):
            (self.warn if finding.warning else self.error)(finding.message, step=path, fld=fld)

    def _expression(self, expr: str, path: str, fld: str, own_id: str, visible: set[str]) -> None:
        try:
            self.sandbox.check(expr)
        except ExpressionError as exc:
            self.error(f"invalid expression: {exc}", step=path, fld=fld)
            return
        refs = referenced_results(expr)
        # Windmill evaluates the result of a step that has not run as null
        # (backend/tests: test_flow_results_non_existent_step): a warning, not an error.
        for ref in sorted(refs or ()):
            if ref in visible:
                continue
            if ref == own_id:
                why = "refers to the step itself, which has no result yet"
            elif ref in self.isolated:
                why = f"names step '{ref}' inside a parallel for loop, whose steps are visible only in their own iteration"
            elif ref in self.seen_ids or ref in self._all_ids():
                why = f"names step '{ref}', which cannot have run before '{own_id}'"
            else:
                why = "names no step of this flow"
            self.warn(f"results.{ref} {why}: it evaluates to null, as in Windmill", step=path, fld=fld)

    def _all_ids(self) -> set[str]:
        return self._collect_ids(self.flow.value.modules)


def _children(module: FlowModule) -> Iterator[list[FlowModule]]:
    value = module.value
    if isinstance(value, (ForloopFlow, WhileloopFlow)):
        yield value.modules
    elif isinstance(value, BranchOne):
        yield from (b.modules for b in value.branches)
        yield value.default
    elif isinstance(value, BranchAll):
        yield from (b.modules for b in value.branches)


def _expressions(module: FlowModule) -> Iterator[tuple[str, str]]:
    """Every JavaScript expression a module itself holds, with its field name."""
    value = module.value
    for name, transform in (getattr(value, "input_transforms", None) or {}).items():
        if isinstance(transform, JavascriptTransform):
            yield f"value.input_transforms.{name}.expr", transform.expr
    if isinstance(value, ForloopFlow):
        if isinstance(value.iterator, JavascriptTransform):
            yield "value.iterator.expr", value.iterator.expr
        if isinstance(value.parallelism, JavascriptTransform):
            yield "value.parallelism.expr", value.parallelism.expr
    if isinstance(value, BranchOne):
        for i, branch in enumerate(value.branches):
            yield f"value.branches[{i}].expr", branch.expr
    for name in ("stop_after_if", "stop_after_all_iters_if", "skip_if"):
        cond = getattr(module, name)
        if cond is not None:
            yield f"{name}.expr", cond.expr
    if module.retry and module.retry.retry_if:
        yield "retry.retry_if.expr", module.retry.retry_if.expr
    for name in ("timeout", "sleep"):
        transform = getattr(module, name)
        if isinstance(transform, JavascriptTransform):
            yield f"{name}.expr", transform.expr


def validate_flow(loaded: LoadedFlow, library: Library | None, sandbox: Sandbox) -> list[Problem]:
    """All problems of a loaded flow, errors and warnings, in document order.

    Without a `library` the scripts and flows it references by path are not
    known (they may be applied later): what needs them is not checked.
    """
    missing_steps = {m.step.rsplit("/", 1)[-1] for m in loaded.missing_bodies}
    checker = _Checker(loaded.name, loaded.flow, library or Library(), sandbox, library is not None, missing_steps,
                       frozenset(loaded.default_ids))
    for missing in loaded.missing_bodies:
        checker.error(f"the body in '!inline {missing.file}' is not available", step=missing.step, fld=missing.field)
    checker.check()
    return _dedupe(checker.problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out
