#include "tokenizer/jinja/parser.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/jinja/lexer.h"

namespace mlxd::jinja {
namespace {

class parser {
 public:
  explicit parser(std::vector<token> tokens) : tokens_(std::move(tokens)) {}

  std::unique_ptr<const program> run() {
    auto result = std::make_unique<program>();
    while (!is(token_kind::end)) result->body.push_back(parse_any());
    return result;
  }

 private:
  const token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  bool is(token_kind kind) const { return peek().kind == kind; }
  bool is_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).kind == token_kind::op && peek(ahead).text == op;
  }
  bool is_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).kind == token_kind::name && peek(ahead).text == name;
  }
  // At "{% keyword" for one of `keywords`.
  bool at_statement(std::initializer_list<std::string_view> keywords) const {
    if (!is(token_kind::open_stmt) || peek(1).kind != token_kind::name) return false;
    return std::find(keywords.begin(), keywords.end(), peek(1).text) != keywords.end();
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw chat_template_error("chat template line " + std::to_string(peek().line) + ": " + what);
  }
  std::string describe(const token& t) const {
    switch (t.kind) {
      case token_kind::end:
        return "the end of the template";
      case token_kind::text:
        return "text";
      case token_kind::string:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }
  void expect(token_kind kind, std::string_view what) {
    if (!is(kind)) fail("expected " + std::string(what) + ", found " + describe(peek()));
    ++pos_;
  }
  void expect_op(std::string_view op) {
    if (!is_op(op)) fail("expected '" + std::string(op) + "', found " + describe(peek()));
    ++pos_;
  }
  void expect_name(std::string_view name) {
    if (!is_name(name)) fail("expected '" + std::string(name) + "', found " + describe(peek()));
    ++pos_;
  }
  std::string expect_identifier() {
    if (!is(token_kind::name)) fail("expected a name, found " + describe(peek()));
    return tokens_[pos_++].text;
  }

  expr_ptr make(expr_kind kind) {
    auto e = std::make_unique<expr>();
    e->kind = kind;
    e->line = peek().line;
    return e;
  }
  stmt_ptr make_stmt(stmt_kind kind) {
    auto s = std::make_unique<stmt>();
    s->kind = kind;
    s->line = peek().line;
    return s;
  }

  // ---- statements ----

  stmt_ptr parse_any() {
    if (is(token_kind::text)) {
      auto s = make_stmt(stmt_kind::text);
      s->text = tokens_[pos_++].text;
      return s;
    }
    if (is(token_kind::open_expr)) {
      ++pos_;
      auto s = make_stmt(stmt_kind::output);
      s->expression = parse_expression();
      expect(token_kind::close_expr, "'}}'");
      return s;
    }
    if (is(token_kind::open_stmt)) return parse_statement();
    fail("unexpected " + describe(peek()));
  }

  // Statements up to "{% keyword" for one of `keywords`; the last keyword closes the block.
  std::vector<stmt_ptr> parse_until(std::initializer_list<std::string_view> keywords) {
    const int opened_at = peek().line;
    std::vector<stmt_ptr> body;
    while (!at_statement(keywords)) {
      if (is(token_kind::end)) {
        fail("the block opened on line " + std::to_string(opened_at) + " is not closed: missing {% " +
             std::string(*(keywords.end() - 1)) + " %}");
      }
      body.push_back(parse_any());
    }
    return body;
  }

  // Consumes "{% keyword %}".
  void close_block(std::string_view keyword) {
    expect(token_kind::open_stmt, "'{%'");
    expect_name(keyword);
    expect(token_kind::close_stmt, "'%}'");
  }

  stmt_ptr parse_statement() {
    const depth_guard guard(*this);
    expect(token_kind::open_stmt, "'{%'");
    const std::string keyword = expect_identifier();
    if (keyword == "set") return parse_set();
    if (keyword == "if") return parse_if();
    if (keyword == "for") return parse_for();
    if (keyword == "macro") return parse_macro();
    if (keyword == "call") return parse_call_block();
    if (keyword == "filter") return parse_filter_block();
    if (keyword == "break" || keyword == "continue") {
      auto s = make_stmt(keyword == "break" ? stmt_kind::break_loop : stmt_kind::continue_loop);
      expect(token_kind::close_stmt, "'%}'");
      return s;
    }
    --pos_;
    fail("the statement {% " + keyword + " %} is not supported by mlxd's Jinja interpreter");
  }

  stmt_ptr parse_set() {
    auto s = make_stmt(stmt_kind::set);
    s->target = parse_sequence(false);
    if (is_op("=")) {
      ++pos_;
      s->expression = parse_sequence(false);
      expect(token_kind::close_stmt, "'%}'");
      return s;
    }
    s->kind = stmt_kind::set_block;
    expect(token_kind::close_stmt, "'%}' or '='");
    s->body = parse_until({"endset"});
    close_block("endset");
    return s;
  }

  stmt_ptr parse_if() {
    auto s = make_stmt(stmt_kind::if_block);
    s->expression = parse_expression();
    expect(token_kind::close_stmt, "'%}'");
    s->body = parse_until({"elif", "else", "endif"});
    if (at_statement({"elif"})) {
      pos_ += 2;
      s->alternate.push_back(parse_if());  // the nested if consumes the shared endif
      return s;
    }
    if (at_statement({"else"})) {
      pos_ += 2;
      expect(token_kind::close_stmt, "'%}'");
      s->alternate = parse_until({"endif"});
    }
    close_block("endif");
    return s;
  }

  stmt_ptr parse_for() {
    auto s = make_stmt(stmt_kind::for_block);
    s->target = parse_sequence(true);
    if (s->target->kind != expr_kind::name && s->target->kind != expr_kind::tuple) {
      fail("a for loop variable must be a name or names separated by commas");
    }
    expect_name("in");
    auto iterable = parse_expression();
    if (iterable->kind == expr_kind::select) {
      s->condition = std::move(iterable->a);
      iterable = std::move(iterable->b);
    }
    s->expression = std::move(iterable);
    expect(token_kind::close_stmt, "'%}'");
    s->body = parse_until({"else", "endfor"});
    if (at_statement({"else"})) {
      pos_ += 2;
      expect(token_kind::close_stmt, "'%}'");
      s->alternate = parse_until({"endfor"});
    }
    close_block("endfor");
    return s;
  }

  std::vector<parameter> parse_parameters() {
    std::vector<parameter> params;
    expect_op("(");
    while (!is_op(")")) {
      parameter p;
      p.name = expect_identifier();
      if (is_op("=")) {
        ++pos_;
        p.default_value = parse_expression();
      }
      params.push_back(std::move(p));
      if (!is_op(",")) break;
      ++pos_;
    }
    expect_op(")");
    return params;
  }

  stmt_ptr parse_macro() {
    auto s = make_stmt(stmt_kind::macro);
    s->name = expect_identifier();
    s->params = parse_parameters();
    expect(token_kind::close_stmt, "'%}'");
    s->body = parse_until({"endmacro"});
    close_block("endmacro");
    return s;
  }

  stmt_ptr parse_call_block() {
    auto s = make_stmt(stmt_kind::call_block);
    if (is_op("(")) s->params = parse_parameters();
    s->expression = parse_postfix(parse_primary());
    if (s->expression->kind != expr_kind::call) fail("{% call %} needs a macro call");
    expect(token_kind::close_stmt, "'%}'");
    s->body = parse_until({"endcall"});
    close_block("endcall");
    return s;
  }

  stmt_ptr parse_filter_block() {
    auto s = make_stmt(stmt_kind::filter_block);
    s->expression = parse_filter_tail(nullptr);
    expect(token_kind::close_stmt, "'%}'");
    s->body = parse_until({"endfilter"});
    close_block("endfilter");
    return s;
  }

  // ---- expressions, loosest binding first ----

  // a, b, c as a tuple (for set and for targets); one expression stays itself.
  expr_ptr parse_sequence(bool primary_only) {
    auto first = primary_only ? parse_postfix(parse_primary()) : parse_expression();
    if (!is_op(",")) return first;
    auto tuple = make(expr_kind::tuple);
    tuple->items.push_back(std::move(first));
    while (is_op(",")) {
      ++pos_;
      tuple->items.push_back(primary_only ? parse_postfix(parse_primary()) : parse_expression());
    }
    return tuple;
  }

  // Bounds the recursion of nested expressions and blocks, so a hostile template cannot exhaust the stack.
  struct depth_guard {
    explicit depth_guard(parser& p) : p_(p) {
      constexpr int max_depth = 256;
      if (++p_.depth_ > max_depth) p_.fail("the template nests deeper than 256 levels");
    }
    ~depth_guard() { --p_.depth_; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
    parser& p_;
  };

  expr_ptr parse_expression() {
    const depth_guard guard(*this);
    auto value_if_true = parse_or();
    if (!is_name("if")) return value_if_true;
    ++pos_;
    auto condition = parse_or();
    auto e = make(is_name("else") ? expr_kind::ternary : expr_kind::select);
    e->a = std::move(condition);
    e->b = std::move(value_if_true);
    if (e->kind == expr_kind::ternary) {
      ++pos_;
      e->c = parse_expression();
    }
    return e;
  }

  expr_ptr binary(std::string op, expr_ptr left, expr_ptr right) {
    auto e = make(expr_kind::binary);
    e->name = std::move(op);
    e->a = std::move(left);
    e->b = std::move(right);
    return e;
  }

  expr_ptr parse_or() {
    auto left = parse_and();
    while (is_name("or")) {
      ++pos_;
      left = binary("or", std::move(left), parse_and());
    }
    return left;
  }

  expr_ptr parse_and() {
    auto left = parse_not();
    while (is_name("and")) {
      ++pos_;
      left = binary("and", std::move(left), parse_not());
    }
    return left;
  }

  expr_ptr parse_not() {
    if (!is_name("not")) return parse_comparison();
    auto e = make(expr_kind::unary);
    ++pos_;
    e->name = "not";
    e->a = parse_not();
    return e;
  }

  expr_ptr parse_comparison() {
    auto left = parse_additive();
    while (true) {
      std::string op;
      if (is_name("not") && is_name("in", 1)) {
        op = "not in";
        pos_ += 2;
      } else if (is_name("in")) {
        op = "in";
        ++pos_;
      } else if (is(token_kind::op) && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                        peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = tokens_[pos_++].text;
      } else {
        return left;
      }
      left = binary(std::move(op), std::move(left), parse_additive());
    }
  }

  expr_ptr parse_additive() {
    auto left = parse_multiplicative();
    while (is_op("+") || is_op("-") || is_op("~")) {
      std::string op = tokens_[pos_++].text;
      left = binary(std::move(op), std::move(left), parse_multiplicative());
    }
    return left;
  }

  expr_ptr parse_multiplicative() {
    auto left = parse_power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = tokens_[pos_++].text;
      left = binary(std::move(op), std::move(left), parse_power());
    }
    return left;
  }

  expr_ptr parse_power() {
    auto left = parse_test();
    while (is_op("**")) {
      ++pos_;
      left = binary("**", std::move(left), parse_test());
    }
    return left;
  }

  expr_ptr parse_test() {
    auto operand = parse_filter();
    while (is_name("is")) {
      auto e = make(expr_kind::test);
      ++pos_;
      if (is_name("not")) {
        e->negate = true;
        ++pos_;
      }
      // `none`, `true` and `false` are tests as well as constants.
      e->name = expect_identifier();
      if (is_op("(")) e->args = parse_arguments();
      e->a = std::move(operand);
      operand = std::move(e);
    }
    return operand;
  }

  expr_ptr parse_filter() {
    auto operand = parse_unary();
    while (is_op("|")) operand = parse_filter_tail(std::move(operand));
    return operand;
  }

  // "| name(args)" applied to `operand` (the leading "|" is optional, as in {% filter name %}).
  expr_ptr parse_filter_tail(expr_ptr operand) {
    if (is_op("|")) ++pos_;
    auto e = make(expr_kind::filter);
    e->name = expect_identifier();
    if (is_op("(")) e->args = parse_arguments();
    e->a = std::move(operand);
    return e;
  }

  expr_ptr parse_unary() {
    const depth_guard guard(*this);
    if (is_op("-") || is_op("+")) {
      auto e = make(expr_kind::unary);
      e->name = tokens_[pos_++].text;
      e->a = parse_unary();
      return e;
    }
    return parse_postfix(parse_primary());
  }

  std::vector<argument> parse_arguments() {
    std::vector<argument> args;
    expect_op("(");
    while (!is_op(")")) {
      argument arg;
      if (is(token_kind::name) && is_op("=", 1)) {
        arg.keyword = tokens_[pos_].text;
        pos_ += 2;
      } else if (is_op("*") || is_op("**")) {
        fail("argument unpacking with * or ** is not supported");
      }
      arg.value = parse_expression();
      args.push_back(std::move(arg));
      if (!is_op(",")) break;
      ++pos_;
    }
    expect_op(")");
    return args;
  }

  // Member access a.b and a[...], slices and calls, left to right.
  expr_ptr parse_postfix(expr_ptr object) {
    while (true) {
      if (is_op(".")) {
        ++pos_;
        auto e = make(expr_kind::member);
        if (is(token_kind::number)) {
          e->b = make(expr_kind::literal);
          e->b->constant = parse_integer(tokens_[pos_++].text);
        } else {
          e->name = expect_identifier();
        }
        e->a = std::move(object);
        object = std::move(e);
      } else if (is_op("[")) {
        ++pos_;
        object = parse_subscript(std::move(object));
        expect_op("]");
      } else if (is_op("(")) {
        auto e = make(expr_kind::call);
        e->args = parse_arguments();
        e->a = std::move(object);
        object = std::move(e);
      } else {
        return object;
      }
    }
  }

  expr_ptr parse_subscript(expr_ptr object) {
    expr_ptr parts[3];
    int n_colons = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        if (++n_colons > 2) fail("a slice has at most two ':'");
        ++pos_;
        continue;
      }
      if (parts[n_colons]) fail("expected ':' or ']' in a subscript, found " + describe(peek()));
      parts[n_colons] = parse_expression();
    }
    if (n_colons == 0 && !parts[0]) fail("an empty subscript []");
    auto e = make(n_colons == 0 ? expr_kind::member : expr_kind::slice);
    e->a = std::move(object);
    e->b = std::move(parts[0]);
    e->c = std::move(parts[1]);
    e->d = std::move(parts[2]);
    return e;
  }

  expr_ptr parse_primary() {
    const token& t = peek();
    switch (t.kind) {
      case token_kind::number: {
        auto e = make(expr_kind::literal);
        e->constant = t.text.find('.') != std::string::npos
                          ? value::floating(std::strtod(t.text.c_str(), nullptr))
                          : parse_integer(t.text);
        ++pos_;
        return e;
      }
      case token_kind::string: {
        auto e = make(expr_kind::literal);
        std::string s;
        while (is(token_kind::string)) s += tokens_[pos_++].text;  // adjacent literals concatenate
        e->constant = value::string(std::move(s));
        return e;
      }
      case token_kind::name: {
        auto e = make(expr_kind::name);
        e->name = t.text;
        ++pos_;
        return e;
      }
      case token_kind::op:
        if (t.text == "(") return parse_parenthesized();
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail("expected an expression, found " + describe(t));
  }

  value parse_integer(const std::string& digits) {
    try {
      return value::integer(std::stoll(digits));
    } catch (const std::out_of_range&) {
      fail("the integer " + digits + " is too large");
    }
  }

  expr_ptr parse_parenthesized() {
    ++pos_;
    auto inner = parse_expression();
    if (is_op(",")) {
      auto tuple = make(expr_kind::tuple);
      tuple->items.push_back(std::move(inner));
      while (is_op(",")) {
        ++pos_;
        if (is_op(")")) break;
        tuple->items.push_back(parse_expression());
      }
      inner = std::move(tuple);
    }
    expect_op(")");
    return inner;
  }

  expr_ptr parse_list() {
    auto e = make(expr_kind::list);
    ++pos_;
    while (!is_op("]")) {
      e->items.push_back(parse_expression());
      if (!is_op(",")) break;
      ++pos_;
    }
    expect_op("]");
    return e;
  }

  expr_ptr parse_dict() {
    auto e = make(expr_kind::dict);
    ++pos_;
    while (!is_op("}")) {
      e->items.push_back(parse_expression());
      expect_op(":");
      e->items.push_back(parse_expression());
      if (!is_op(",")) break;
      ++pos_;
    }
    expect_op("}");
    return e;
  }

  std::vector<token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::unique_ptr<const program> parse(std::string_view source) {
  return parser(tokenize(source)).run();
}

}  // namespace mlxd::jinja
