#include "tokenizer/jinja/interpreter.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/text.h"

namespace mlxd::jinja {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw chat_template_error(what);
}

// Variables of one scope; lookups fall back to the parent. Shared, because a caller() closure keeps the
// scope of its {% call %} block alive.
struct scope {
  explicit scope(std::shared_ptr<scope> up) : parent(std::move(up)) {}
  const value* find(const std::string& name) const {
    for (const scope* s = this; s != nullptr; s = s->parent.get()) {
      const auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
  std::unordered_map<std::string, value> vars;
  std::shared_ptr<scope> parent;
};
using scope_ptr = std::shared_ptr<scope>;

enum class flow { normal, break_loop, continue_loop };

// Limits that keep a hostile template from exhausting memory, time or the stack.
constexpr size_t max_output_bytes = size_t{64} << 20;
constexpr int64_t max_loop_iterations = 1'000'000;
constexpr int max_call_depth = 128;

class interpreter {
 public:
  std::string run(const program& tree, const value_dict& variables) {
    auto globals = std::make_shared<scope>(nullptr);
    for (auto& [k, v] : make_globals().entries) globals->vars[k] = v;
    auto top = std::make_shared<scope>(globals);
    for (const auto& [k, v] : variables.entries) top->vars[k] = v;
    std::string out;
    exec_block(tree.body, top, out);
    return out;
  }

 private:
  flow exec_block(const std::vector<stmt_ptr>& body, const scope_ptr& sc, std::string& out) {
    for (const auto& s : body) {
      const flow f = exec_at_line(*s, sc, out);
      if (f != flow::normal) return f;
      if (out.size() > max_output_bytes) fail("the rendered text exceeds 64 MiB");
    }
    return flow::normal;
  }

  // Errors from deeper down keep their line; others get this statement's.
  flow exec_at_line(const stmt& s, const scope_ptr& sc, std::string& out) {
    try {
      return exec(s, sc, out);
    } catch (const chat_template_error& e) {
      if (std::string_view(e.what()).starts_with("chat template line")) throw;
      throw chat_template_error("chat template line " + std::to_string(s.line) + ": " + e.what());
    }
  }

  flow exec(const stmt& s, const scope_ptr& sc, std::string& out) {
    switch (s.kind) {
      case stmt_kind::text:
        out += s.text;
        return flow::normal;
      case stmt_kind::output:
        out += eval(*s.expression, sc).to_output();
        return flow::normal;
      case stmt_kind::set:
        assign(*s.target, eval(*s.expression, sc), sc);
        return flow::normal;
      case stmt_kind::set_block: {
        std::string text;
        exec_block(s.body, sc, text);
        assign(*s.target, value::string(std::move(text)), sc);
        return flow::normal;
      }
      case stmt_kind::if_block:
        return exec_block(eval(*s.expression, sc).truthy() ? s.body : s.alternate, sc, out);
      case stmt_kind::for_block:
        exec_for(s, sc, out);
        return flow::normal;
      case stmt_kind::macro:
        sc->vars[s.name] = value::macro(&s);
        return flow::normal;
      case stmt_kind::call_block:
        out += exec_call_block(s, sc);
        return flow::normal;
      case stmt_kind::filter_block: {
        std::string text;
        exec_block(s.body, sc, text);
        out += apply_filter(s.expression->name, value::string(std::move(text)),
                            eval_args(s.expression->args, sc))
                   .to_output();
        return flow::normal;
      }
      case stmt_kind::break_loop:
        return flow::break_loop;
      case stmt_kind::continue_loop:
        return flow::continue_loop;
    }
    return flow::normal;
  }

  void assign(const expr& target, const value& v, const scope_ptr& sc) {
    if (target.kind == expr_kind::name) {
      sc->vars[target.name] = v;
    } else if (target.kind == expr_kind::tuple) {
      if (!v.is(value_kind::list))
        fail("cannot unpack a " + std::string(v.kind_name()) + " into several names");
      if (v.as_list().size() != target.items.size())
        fail("cannot unpack " + std::to_string(v.as_list().size()) + " values into " +
             std::to_string(target.items.size()) + " names");
      for (size_t i = 0; i < target.items.size(); ++i) assign(*target.items[i], v.as_list()[i], sc);
    } else if (target.kind == expr_kind::member && target.b == nullptr) {
      const value object = eval(*target.a, sc);
      if (!object.is(value_kind::name_space))
        fail("only a namespace() accepts attribute assignment, not a " + std::string(object.kind_name()));
      object.mutable_dict().set(target.name, v);
    } else {
      fail("cannot assign to this expression");
    }
  }

  void exec_for(const stmt& s, const scope_ptr& sc, std::string& out) {
    const value iterable = eval(*s.expression, sc);
    value_list source;
    if (iterable.is(value_kind::list)) {
      source = iterable.as_list();
    } else if (iterable.is(value_kind::dict)) {
      for (const auto& [k, v] : iterable.as_dict().entries) source.push_back(value::string(k));
    } else if (iterable.is(value_kind::string)) {
      source = apply_filter("list", iterable, {}).as_list();
    } else {
      fail("a for loop needs a list, a dict or a string, not a " + std::string(iterable.kind_name()));
    }
    auto loop_scope = std::make_shared<scope>(sc);
    value_list items;
    for (const auto& item : source) {
      if (s.condition) {
        assign(*s.target, item, loop_scope);
        if (!eval(*s.condition, loop_scope).truthy()) continue;
      }
      items.push_back(item);
    }
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      if (++iterations_ > max_loop_iterations) fail("the template runs more than a million loop iterations");
      value_dict loop;
      loop.set("index", value::integer(i + 1));
      loop.set("index0", value::integer(i));
      loop.set("revindex", value::integer(n - i));
      loop.set("revindex0", value::integer(n - i - 1));
      loop.set("first", value::boolean(i == 0));
      loop.set("last", value::boolean(i == n - 1));
      loop.set("length", value::integer(n));
      loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : value());
      loop.set("nextitem", i < n - 1 ? items[static_cast<size_t>(i + 1)] : value());
      loop_scope->vars["loop"] = value::dict(std::move(loop));
      assign(*s.target, items[static_cast<size_t>(i)], loop_scope);
      if (exec_block(s.body, loop_scope, out) == flow::break_loop) break;
    }
    if (items.empty()) exec_block(s.alternate, loop_scope, out);
  }

  std::string exec_call_block(const stmt& s, const scope_ptr& sc) {
    const expr& call = *s.expression;
    const value callee = eval(*call.a, sc);
    if (!callee.is(value_kind::macro))
      fail("{% call %} needs a macro, not a " + std::string(callee.kind_name()));
    auto with_caller = std::make_shared<scope>(sc);
    const stmt* block = &s;
    with_caller->vars["caller"] = value::function([this, block, sc](const call_args& args) {
      auto body_scope = std::make_shared<scope>(sc);
      bind_parameters(block->params, args, body_scope, "caller");
      std::string text;
      exec_block(block->body, body_scope, text);
      return value::string(std::move(text));
    });
    return call_macro(*callee.as_macro(), eval_args(call.args, sc), with_caller).as_string();
  }

  void bind_parameters(const std::vector<parameter>& params, const call_args& args, const scope_ptr& target,
                       const std::string& who) {
    if (args.positional.size() > params.size())
      fail(who + " takes at most " + std::to_string(params.size()) + " arguments");
    for (size_t i = 0; i < params.size(); ++i) {
      const value* given =
          i < args.positional.size() ? &args.positional[i] : args.keyword_arg(params[i].name);
      target->vars[params[i].name] = given != nullptr ? *given : value();
    }
    for (const auto& keyword : args.keyword) {
      const std::string& name = keyword.first;
      const bool known =
          std::any_of(params.begin(), params.end(), [&](const parameter& p) { return p.name == name; });
      if (!known) fail(who + " has no parameter '" + name + "'");
    }
    // Defaults see the parameters bound so far, as in the reference.
    for (size_t i = args.positional.size(); i < params.size(); ++i) {
      if (params[i].default_value && args.keyword_arg(params[i].name) == nullptr) {
        target->vars[params[i].name] = eval(*params[i].default_value, target);
      }
    }
  }

  value call_macro(const stmt& macro, const call_args& args, const scope_ptr& caller_scope) {
    if (++depth_ > max_call_depth) fail("macro calls nest deeper than 128 levels");
    auto body_scope = std::make_shared<scope>(caller_scope);
    bind_parameters(macro.params, args, body_scope, "macro " + macro.name);
    std::string text;
    exec_block(macro.body, body_scope, text);
    --depth_;
    return value::string(std::move(text));
  }

  call_args eval_args(const std::vector<argument>& args, const scope_ptr& sc) {
    call_args out;
    for (const auto& a : args) {
      if (a.keyword.empty()) {
        if (!out.keyword.empty()) fail("a positional argument follows a keyword argument");
        out.positional.push_back(eval(*a.value, sc));
      } else {
        if (out.keyword_arg(a.keyword) != nullptr)
          fail("the keyword argument '" + a.keyword + "' is given twice");
        out.keyword.emplace_back(a.keyword, eval(*a.value, sc));
      }
    }
    return out;
  }

  value eval(const expr& e, const scope_ptr& sc) {
    switch (e.kind) {
      case expr_kind::literal:
        return e.constant;
      case expr_kind::name: {
        const value* v = sc->find(e.name);
        return v != nullptr ? *v : value();
      }
      case expr_kind::list:
      case expr_kind::tuple: {
        value_list items;
        for (const auto& item : e.items) items.push_back(eval(*item, sc));
        return value::list(std::move(items));
      }
      case expr_kind::dict: {
        value_dict d;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const value key = eval(*e.items[i], sc);
          if (!key.is(value_kind::string))
            fail("a dict key must be a string, not a " + std::string(key.kind_name()));
          d.set(key.as_string(), eval(*e.items[i + 1], sc));
        }
        return value::dict(std::move(d));
      }
      case expr_kind::member: {
        const value object = eval(*e.a, sc);
        return e.b ? get_item(object, eval(*e.b, sc)) : get_attribute(object, e.name);
      }
      case expr_kind::slice: {
        const value object = eval(*e.a, sc);
        auto part = [&](const expr_ptr& p) { return p ? eval(*p, sc) : value(); };
        return get_slice(object, part(e.b), part(e.c), part(e.d));
      }
      case expr_kind::call: {
        const value callee = eval(*e.a, sc);
        const call_args args = eval_args(e.args, sc);
        if (callee.is(value_kind::function)) return callee.as_function()(args);
        if (callee.is(value_kind::macro)) return call_macro(*callee.as_macro(), args, sc);
        fail("cannot call a " + std::string(callee.kind_name()) +
             (e.a->kind == expr_kind::member ? " (no method '" + e.a->name + "')"
              : e.a->kind == expr_kind::name ? " ('" + e.a->name + "' is not a function)"
                                             : ""));
      }
      case expr_kind::unary:
        return eval_unary(e, sc);
      case expr_kind::binary:
        return eval_binary(e, sc);
      case expr_kind::filter:
        return apply_filter(e.name, eval(*e.a, sc), eval_args(e.args, sc));
      case expr_kind::test: {
        const bool passed = apply_test(e.name, eval(*e.a, sc), eval_args(e.args, sc));
        return value::boolean(passed != e.negate);
      }
      case expr_kind::ternary:
        return eval(*e.a, sc).truthy() ? eval(*e.b, sc) : eval(*e.c, sc);
      case expr_kind::select:
        return eval(*e.a, sc).truthy() ? eval(*e.b, sc) : value();
    }
    return value();
  }

  value eval_unary(const expr& e, const scope_ptr& sc) {
    const value v = eval(*e.a, sc);
    if (e.name == "not") return value::boolean(!v.truthy());
    const int64_t sign = e.name == "-" ? -1 : 1;
    if (v.is(value_kind::integer)) return value::integer(sign * v.as_int());
    if (v.is(value_kind::boolean)) return value::integer(sign * (v.as_bool() ? 1 : 0));
    if (v.is(value_kind::floating)) return value::floating(static_cast<double>(sign) * v.as_double());
    fail("unary " + e.name + " needs a number, not a " + std::string(v.kind_name()));
  }

  value eval_binary(const expr& e, const scope_ptr& sc) {
    const std::string& op = e.name;
    const value left = eval(*e.a, sc);
    if (op == "and") return left.truthy() ? eval(*e.b, sc) : left;
    if (op == "or") return left.truthy() ? left : eval(*e.b, sc);
    const value right = eval(*e.b, sc);
    if (op == "==") return value::boolean(loosely_equal(left, right));
    if (op == "!=") return value::boolean(!loosely_equal(left, right));
    if ((op == "in" || op == "not in") && right.is_undefined()) return value::boolean(op == "not in");
    if (left.is_undefined() || right.is_undefined() || left.is(value_kind::none) ||
        right.is(value_kind::none)) {
      fail("cannot apply '" + op + "' to " + std::string(left.kind_name()) + " and " +
           std::string(right.kind_name()));
    }
    if (op == "~") return value::string(left.to_output() + right.to_output());
    if (op == "in" || op == "not in") {
      call_args seq;
      seq.positional.push_back(right);
      return value::boolean(apply_test("in", left, seq) == (op == "in"));
    }
    if (left.is_number() && right.is_number()) return arithmetic(op, left, right);
    if (op == "**") {
      auto as_number = [](const value& v) {
        return v.is(value_kind::boolean) ? value::integer(v.as_bool()) : v;
      };
      if (as_number(left).is_number() && as_number(right).is_number()) {
        return arithmetic(op, as_number(left), as_number(right));
      }
    }
    if (op == "+" && left.is(value_kind::list) && right.is(value_kind::list)) {
      value_list items = left.as_list();
      items.insert(items.end(), right.as_list().begin(), right.as_list().end());
      return value::list(std::move(items));
    }
    if (op == "+" && (left.is(value_kind::string) || right.is(value_kind::string))) {
      return value::string(concat_text(left) + concat_text(right));
    }
    if (op == "*" && left.is(value_kind::string) && right.is(value_kind::integer)) {
      std::string out;
      for (int64_t i = 0; i < right.as_int() && out.size() <= max_output_bytes; ++i) out += left.as_string();
      return value::string(std::move(out));
    }
    if ((op == "<" || op == ">" || op == "<=" || op == ">=") && left.is(value_kind::string) &&
        right.is(value_kind::string)) {
      const int c = compare_values(left, right, true);
      return value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    fail("cannot apply '" + op + "' to " + std::string(left.kind_name()) + " and " +
         std::string(right.kind_name()));
  }

  // A float concatenated to a string prints as JavaScript prints the number (1.0 -> "1").
  static std::string concat_text(const value& v) {
    return v.is(value_kind::floating) ? js_number(v.as_double()) : v.to_output();
  }

  static value arithmetic(const std::string& op, const value& a, const value& b) {
    const bool floating = a.is(value_kind::floating) || b.is(value_kind::floating);
    const double x = a.as_double(), y = b.as_double();
    if (op == "<") return value::boolean(x < y);
    if (op == ">") return value::boolean(x > y);
    if (op == "<=") return value::boolean(x <= y);
    if (op == ">=") return value::boolean(x >= y);
    if (op == "/") {
      if (y == 0) fail("division by zero");
      return value::floating(x / y);
    }
    if (op == "**") {
      if (x == 0 && y < 0) fail("0 cannot be raised to a negative power");
      const double r = std::pow(x, y);
      if (!std::isfinite(r)) fail("the power is not a finite number");
      return floating || y < 0 ? value::floating(r) : value::integer(static_cast<int64_t>(r));
    }
    if (!floating) {
      const int64_t i = a.as_int(), j = b.as_int();
      if (op == "+") return value::integer(i + j);
      if (op == "-") return value::integer(i - j);
      if (op == "*") return value::integer(i * j);
      if (j == 0) fail("division by zero");
      // Python's floor division and modulo: the remainder takes the divisor's sign.
      const int64_t q = i / j - ((i % j != 0) && ((i < 0) != (j < 0)) ? 1 : 0);
      if (op == "//") return value::integer(q);
      if (op == "%") return value::integer(i - q * j);
    }
    if (op == "+") return value::floating(x + y);
    if (op == "-") return value::floating(x - y);
    if (op == "*") return value::floating(x * y);
    if (y == 0) fail("division by zero");
    if (op == "//") return value::floating(std::floor(x / y));
    if (op == "%") return value::floating(x - std::floor(x / y) * y);
    fail("unknown operator '" + op + "'");
  }

  int64_t iterations_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string render(const program& tree, const value_dict& variables) {
  return interpreter().run(tree, variables);
}

}  // namespace mlxd::jinja
