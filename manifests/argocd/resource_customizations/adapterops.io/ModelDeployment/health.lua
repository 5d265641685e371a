-- Health of an AdapterOps ModelDeployment (adapterops.io/v1alpha1): a model served by NIM or vLLM with
-- its LoRA adapters, every new revision canaried against the stable one and promoted or rolled back.
-- The operator sets status.observedGeneration, status.stable, status.canary (while a canary runs) and
-- the conditions Accepted, Ready, Progressing, Suspended, RolledBack and Degraded on every reconcile.
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
  hs.message = "Waiting for the AdapterOps operator to observe the ModelDeployment"
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

-- Degraded=True: the spec's revision was rolled back (reason RolledBack) or the stable revision lost
-- ready replicas. RolledBack=True alone stays after the spec is reverted to the stable revision (then
-- Degraded is False): only an operator that sets no Degraded condition is judged by RolledBack.
local degraded = condition("Degraded")
local rolledBack = condition("RolledBack")
if isTrue(degraded) or (degraded == nil and isTrue(rolledBack)) then
  hs.status = "Degraded"
  hs.message = messageOf(degraded, messageOf(rolledBack, "The canary was rolled back"))
  return hs
end

-- Suspended=True: the canary holds, paused by spec.canary.paused (reason Paused), on inconclusive
-- analysis (AnalysisInconclusive: no data never promotes) or awaiting a promote action
-- (AwaitingPromotion, with autoPromote false).
local suspended = condition("Suspended")
if isTrue(suspended) then
  hs.status = "Suspended"
  hs.message = messageOf(suspended, "The canary is suspended")
  return hs
end

local progressing = condition("Progressing")
if obj.status.canary ~= nil then
  hs.status = "Progressing"
  hs.message = messageOf(progressing, "Canary " .. tostring(obj.status.canary.revision) .. " in progress")
  return hs
end

local ready = condition("Ready")
if isTrue(ready) and not isTrue(progressing) then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "Serving")
  return hs
end

hs.status = "Progressing"
if isTrue(progressing) then
  hs.message = messageOf(progressing, "Rolling out")
else
  hs.message = messageOf(ready, "Waiting for the stable revision to become ready")
end
return hs
