--- aeon.cli.template: `aeon-host [--store dynamodb:NAME] store template [APP.lua]`, a
-- CloudFormation template (JSON) that deploys an app on AWS Lambda as Aeon
-- deploys its own (README "Deploying to AWS Lambda").
--
-- The tables are the CreateTable requests `store deploy` sends, taken from
-- the backend itself (aeon.lambda.tables), so both make the same tables:
-- Aeon's events table (key + revision, the by-revision index, a NEW_IMAGE
-- stream), its metadata table (pk + sk, NEW_IMAGE stream) and our views
-- table, on-demand, kept when the stack goes (DeletionPolicy Retain: they
-- hold the events). With an app it adds the function (runtime
-- provided.al2023, the zip of `make lambda`, whose handler is
-- app/FILE.lua), its function URL, the stream's event source mapping when
-- the app has projections, and a role allowed only these tables' and this
-- stream's actions and the function's own log group.
local aeon = require "aeon"
local appmod = require "aeon.app"
local lambda = require "aeon.lambda"
local options = require "aeon.cli.options"

local ipairs, pairs, type = ipairs, pairs, type
local json_encode, json_decode = aeon.json.encode, aeon.json.decode
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

local RESOURCE = { events = "EventsTable", metadata = "MetadataTable", views = "ViewsTable" }

local function sub(text) return { ["Fn::Sub"] = text } end
local function ref(name) return { Ref = name } end
local function getatt(name, attr) return { ["Fn::GetAtt"] = { name, attr } } end

-- A CreateTable request as an AWS::DynamoDB::Table's properties: the same
-- fields, but that a stream is on when it has a view type.
local function table_properties(request)
  local props = {}
  for k, v in pairs(request) do
    if k ~= "role" then props[k] = v end
  end
  if props.StreamSpecification then
    props.StreamSpecification = { StreamViewType = props.StreamSpecification.StreamViewType }
  end
  return props
end

-- The actions the DynamoDB backend takes (store/dynamodb/): reads,
-- conditional writes, transactions (whose items IAM checks as PutItem and
-- ConditionCheckItem), batch deletes for view:clear, DescribeTable; and
-- the stream's, for the event source mapping and subscriptions.
local TABLE_ACTIONS = { "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem",
  "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
  "dynamodb:DescribeTable" }
local STREAM_ACTIONS = { "dynamodb:DescribeStream", "dynamodb:GetRecords",
  "dynamodb:GetShardIterator" }

local function role(tables, function_name)
  local arns = {}
  for _, t in ipairs(tables) do
    local r = RESOURCE[t.role]
    arns[#arns + 1] = getatt(r, "Arn")
    if t.GlobalSecondaryIndexes then
      arns[#arns + 1] = sub("${" .. r .. ".Arn}/index/*")
    end
  end
  local log_group = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
    .. function_name
  return {
    Type = "AWS::IAM::Role",
    Properties = {
      AssumeRolePolicyDocument = {
        Version = "2012-10-17",
        Statement = { { Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" },
          Action = "sts:AssumeRole" } },
      },
      Policies = { {
        PolicyName = "aeon-store",
        PolicyDocument = {
          Version = "2012-10-17",
          Statement = {
            { Sid = "Tables", Effect = "Allow", Action = TABLE_ACTIONS, Resource = arns },
            { Sid = "EventsStream", Effect = "Allow", Action = STREAM_ACTIONS,
              Resource = getatt("EventsTable", "StreamArn") },
            -- ListStreams has no resource of its own to name.
            { Sid = "ListStreams", Effect = "Allow", Action = "dynamodb:ListStreams",
              Resource = "*" },
            { Sid = "LogGroup", Effect = "Allow", Action = "logs:CreateLogGroup",
              Resource = sub(log_group) },
            { Sid = "LogStreams", Effect = "Allow",
              Action = { "logs:CreateLogStream", "logs:PutLogEvents" },
              Resource = sub(log_group .. ":*") },
          },
        },
      } },
    },
  }
end

-- Lambda's names: letters, digits, - and _, at most 64.
local function function_name(store_name, app_name)
  local n = (store_name .. "-" .. app_name):gsub("[^%w_-]", "-")
  return n:sub(1, 64)
end

--- The template for a store URI and, optionally, an app (and its file's
-- name): a Lua table, or nil and a message.
function M.build(uri, app, file)
  local text, err = lambda.tables(uri)
  if not text then return nil, err end
  local tables = json_decode(text)
  local t = {
    AWSTemplateFormatVersion = "2010-09-09",
    Description = "Aeon's tables for the store " .. uri ..
      (app and ("; the aeon-host app " .. app.name .. " on AWS Lambda") or ""),
    Resources = {},
    Outputs = {},
  }
  local store_name
  for _, request in ipairs(tables) do
    store_name = store_name or request.TableName
    t.Resources[RESOURCE[request.role]] = { Type = "AWS::DynamoDB::Table",
      DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain",
      Properties = table_properties(request) }
  end
  t.Outputs.Store = { Description = "AEON_STORE for aeon-host", Value = uri }
  if not app then return t end

  local fname = function_name(store_name, app.name)
  t.Parameters = {
    CodeBucket = { Type = "String", Description = "the S3 bucket holding make lambda's zip" },
    CodeKey = { Type = "String", Default = "aeon-lambda.zip",
      Description = "its key in the bucket" },
    MemorySize = { Type = "Number", Default = 512, MinValue = 128, MaxValue = 10240,
      Description = "MB of memory for the function" },
    Timeout = { Type = "Number", Default = 30, MinValue = 1, MaxValue = 900,
      Description = "seconds an invocation may run (the handler is stopped 250 ms before)" },
    UrlAuthType = { Type = "String", Default = "AWS_IAM", AllowedValues = { "AWS_IAM", "NONE" },
      Description = "who may call the function URL: signed requests, or anyone" },
  }
  t.Conditions = { PublicUrl = { ["Fn::Equals"] = { ref("UrlAuthType"), "NONE" } } }
  t.Resources.FunctionRole = role(tables, fname)
  t.Resources.Function = {
    Type = "AWS::Lambda::Function",
    Properties = {
      FunctionName = fname,
      Runtime = "provided.al2023",
      Architectures = { "x86_64" },
      Handler = "app/" .. file:match("([^/]*)$"),
      Code = { S3Bucket = ref("CodeBucket"), S3Key = ref("CodeKey") },
      MemorySize = ref("MemorySize"),
      Timeout = ref("Timeout"),
      Role = getatt("FunctionRole", "Arn"),
      Environment = { Variables = { AEON_STORE = uri } },
    },
  }
  t.Resources.FunctionUrl = { Type = "AWS::Lambda::Url", Properties = {
    TargetFunctionArn = getatt("Function", "Arn"), AuthType = ref("UrlAuthType") } }
  -- A URL without IAM auth still needs a resource policy letting anyone in.
  t.Resources.PublicUrlPermission = { Type = "AWS::Lambda::Permission",
    Condition = "PublicUrl", Properties = {
      Action = "lambda:InvokeFunctionUrl", FunctionName = ref("Function"),
      Principal = "*", FunctionUrlAuthType = "NONE" } }
  t.Outputs.FunctionUrl = { Description = "the app's URL: POST /commands/NAME, " ..
    "GET /queries/NAME, GET /health", Value = getatt("FunctionUrl", "FunctionUrl") }
  if #app:projection_names() > 0 then
    -- Every event since the stream began (TRIM_HORIZON: a projection must
    -- see them all), 100 at a time as aeon.project's batches; a failing
    -- record is retried alone (bisect) and reported (ReportBatchItemFailures),
    -- so the records before it are not handed over twice. Only inserts:
    -- events are never changed.
    t.Resources.EventsStreamMapping = { Type = "AWS::Lambda::EventSourceMapping", Properties = {
      EventSourceArn = getatt("EventsTable", "StreamArn"),
      FunctionName = ref("Function"),
      StartingPosition = "TRIM_HORIZON",
      BatchSize = 100,
      MaximumBatchingWindowInSeconds = 1,
      BisectBatchOnFunctionError = true,
      FunctionResponseTypes = { "ReportBatchItemFailures" },
      FilterCriteria = { Filters = { { Pattern = '{"eventName":["INSERT"]}' } } },
    } }
  end
  return t
end

--- store template [APP.lua]: prints the template; returns the exit status.
function M.main(opts, path)
  local uri = options.store_uri(opts)
  if not (uri:match("^dynamodb:") or uri:match("^%s*{")) then
    usage("store template is for a DynamoDB store (--store dynamodb:NAME), not %s", uri)
  end
  local app
  if path then
    local ok, result = options.load_file(path, {})
    if not ok then return result end
    if not appmod.is_app(result) then usage("%s does not return an app", path) end
    app = result
  end
  local t, err = M.build(uri, app, path)
  if not t then say("%s", err); return EXIT.usage end
  io.stdout:write(json_encode(t), "\n")
  return EXIT.ok
end

return M
