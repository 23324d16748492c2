-- One row per order of the batch with what the model sees (channel, amount, the customer's segment
-- and country) and the label it learns: was the order cancelled or returned?
SELECT
    o.order_id,
    o.customer_id,
    o.ordered_at,
    o.channel,
    CAST(o.amount AS DOUBLE) AS amount,
    c.segment,
    c.country,
    CASE WHEN o.status IN ('cancelled', 'returned') THEN 1 ELSE 0 END AS is_lost
FROM {{ ref('extract_orders') }} AS o
LEFT JOIN {{ ref('extract_customers') }} AS c ON c.customer_id = o.customer_id
WHERE o.ordered_at >= :from_date AND o.ordered_at < :to_date
