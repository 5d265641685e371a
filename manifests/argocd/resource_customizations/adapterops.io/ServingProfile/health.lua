-- Health of an AdapterOps ServingProfile (adapterops.io/v1alpha1): candidate (engine, TP, GPU type)
-- configurations deployed briefly, measured under load, and the cheapest one meeting the latency SLO chosen.
-- The operator sets status.observedGeneration, status.state (Pending, Running, Succeeded, Failed) and the
-- conditions Accepted, Running and Succeeded (each with reason and message) on every reconcile.
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

local function messageOf(c, default)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return default
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the AdapterOps operator to observe the ServingProfile"
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

-- Failed: no candidate met the SLO (or none could be measured); the Succeeded condition says why.
local succeeded = condition("Succeeded")
if obj.status.state == "Failed" then
  hs.status = "Degraded"
  hs.message = messageOf(succeeded, "No candidate meets the SLO")
  return hs
end
if obj.status.state == "Succeeded" then
  hs.status = "Healthy"
  hs.message = messageOf(succeeded, "A configuration was chosen")
  return hs
end

-- Pending or Running: measuring, or waiting for the adapters it serves (a FineTuneJob's champion).
local running = condition("Running")
if running ~= nil and running.status == "True" then
  hs.message = messageOf(running, "Measuring the candidates")
else
  hs.message = messageOf(succeeded, "Waiting for the operator to start measuring")
end
hs.status = "Progressing"
return hs
