-- Health of an AdapterOps FineTuneJob (adapterops.io/v1alpha1): a bounded sweep of LoRA trials.
-- The operator sets status.observedGeneration and the conditions Accepted, Running, Succeeded, Failed
-- and Suspended (each with reason and message) on every reconcile.
-- Uses only Lua's base library, so it runs from argocd-cm without useOpenLibs.
local hs = {}

local function condition(type)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c, default)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return default
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the AdapterOps operator to observe the FineTuneJob"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the AdapterOps operator to observe generation " .. obj.metadata.generation
  return hs
end

local accepted = condition("Accepted")
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = messageOf(accepted, "The spec was refused")
  return hs
end

local failed = condition("Failed")
if isTrue(failed) or obj.status.state == "Failed" then
  hs.status = "Degraded"
  hs.message = messageOf(failed, "The sweep failed")
  return hs
end

local succeeded = condition("Succeeded")
if isTrue(succeeded) or obj.status.state == "Succeeded" then
  hs.status = "Healthy"
  hs.message = messageOf(succeeded, "The sweep succeeded")
  return hs
end

local suspended = condition("Suspended")
if isTrue(suspended) or obj.status.state == "Suspended" then
  hs.status = "Suspended"
  hs.message = messageOf(suspended, "The sweep is suspended")
  return hs
end

hs.status = "Progressing"
hs.message = messageOf(condition("Running"), "Waiting for trials to start")
return hs
