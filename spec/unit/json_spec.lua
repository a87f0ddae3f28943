-- aeon.json: the exact Lua <-> JSON conversion event data takes (host/json.c).
local aeon = require "aeon"

local encode, decode = aeon.json.encode, aeon.json.decode

describe("aeon.json", function()
  describe("encode", function()
    it("writes integers exactly and floats so they read back as floats", function()
      assert.same("9007199254740993", encode(9007199254740993))
      assert.same("9223372036854775807", encode(math.maxinteger))
      assert.same("-9223372036854775808", encode(math.mininteger))
      assert.same("1.0", encode(1.0))
      assert.same("0.1", encode(0.1))
      assert.same("-0.0", encode(-0.0))
      assert.same("1e+300", encode(1e300))
      assert.same(5e-324, tonumber(encode(5e-324)))
    end)

    it("escapes strings and keeps UTF-8 as it is", function()
      assert.same([["a\"b\\c\n\t\u0000\u001f é"]], encode("a\"b\\c\n\t\0\31 é"))
    end)

    it("writes arrays for 1..n keys and objects for string keys", function()
      assert.same("[1,2,3]", encode { 1, 2, 3 })
      assert.same('{"a":1}', encode { a = 1 })
      assert.same("{}", encode {})
      assert.same("[1,null,3]", encode { 1, aeon.null, 3 })
    end)

    it("writes object keys sorted, at every depth (their order changed from run to run)", function()
      -- Tables built in different orders hash their keys differently.
      local a, b = {}, {}
      for i = 1, 40 do a["k" .. i] = i end
      for i = 40, 1, -1 do b["k" .. i] = i end
      assert.same(encode(a), encode(b))
      local keys = {}
      for k in encode(a):gmatch('"(k%d+)"') do keys[#keys + 1] = k end
      local sorted = { table.unpack(keys) }
      table.sort(sorted)
      assert.same(sorted, keys)
      assert.same('{"":0,"a":{"y":[2,{"c":2,"d":1}],"z":1},"aa":3,"b":1,"é":4}',
        encode { b = 1, a = { z = 1, y = { 2, { d = 1, c = 2 } } }, aa = 3, [""] = 0, ["é"] = 4 })
    end)

    it("names the key of a bad value inside a sorted object", function()
      local ok, err = pcall(encode, { a = 1, b = { c = 0 / 0 }, d = 2 })
      assert.is_false(ok)
      assert.matches("at %.b%.c: NaN cannot be stored", err)
    end)

    it("refuses what JSON cannot hold, naming where", function()
      local cases = {
        { 0 / 0, "NaN" }, { math.huge, "infinity" }, { { 1, nil, 3 }, "holes" },
        { { 1, a = 2 }, "mixes" }, { { [1.5] = 1 }, "keys" }, { { [true] = 1 }, "keys" },
        { "\192\128", "UTF%-8" }, { "\237\160\128", "UTF%-8" }, { { f = print }, "function" },
        { { deep = { list = { 1, { x = 0 / 0 } } } }, "at %.deep%.list%[2%]%.x" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(encode, c[1])
        assert.is_false(ok)
        assert.matches(c[2], err)
      end
    end)

    it("refuses tables that contain themselves instead of overflowing", function()
      local t = {}
      t.self = t
      local ok, err = pcall(encode, t)
      assert.is_false(ok)
      assert.matches("too deep", err)
    end)
  end)

  describe("decode", function()
    it("reads integers as integers and the rest as floats", function()
      assert.same("integer", math.type(decode("9007199254740993")))
      assert.same(9007199254740993, decode("9007199254740993"))
      assert.same(math.mininteger, decode("-9223372036854775808"))
      assert.same("float", math.type(decode("9223372036854775808")))
      assert.same("float", math.type(decode("1.0")))
      assert.same("float", math.type(decode("1e2")))
      assert.same(0.1, decode("0.1"))
    end)

    it("reads escapes and surrogate pairs", function()
      assert.same("é\n/𝄞", decode([["\u00e9\n\/\ud834\udd1e"]]))
    end)

    it("reads null as aeon.null", function()
      assert.same({ 1, aeon.null }, decode("[1,null]"))
    end)

    it("answers nil and a message for malformed input", function()
      for _, bad in ipairs { "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "\"\\x\"",
        "\"\\ud834\"", "[1] 2", "{\"a\":1,}", "\"a\1b\"", "\"\255\"", "nul", "[", "{\"a\":}", "1e999", "-1e400" } do
        local v, err = decode(bad)
        assert.is_nil(v, bad)
        assert.matches("malformed JSON at byte %d+", err)
      end
    end)

    it("refuses deep nesting without overflowing the stack", function()
      local v, err = decode(string.rep("[", 100000) .. string.rep("]", 100000))
      assert.is_nil(v)
      assert.matches("too deep", err)
      assert.is_table(decode(string.rep("[", 150) .. string.rep("]", 150)))
    end)

    it("round-trips what it encodes", function()
      local value = { n = { 1, 2.5, -3, 1e-7 }, s = "x\0y", b = { t = true, f = false }, e = {} }
      assert.same(value, decode(encode(value)))
    end)
  end)
end)
