-- Revenue of one batch of orders by channel.
-- ref('extract_orders') is the staged batch that passed validation; :from_date/:to_date bound the window.
SELECT
    channel,
    count(*) AS orders,
    count(*) FILTER (WHERE status IN ('cancelled', 'returned')) AS lost_orders,
    sum(amount) AS gross_revenue,
    sum(CASE WHEN status IN ('cancelled', 'returned') THEN 0 ELSE amount END) AS net_revenue
FROM {{ ref('extract_orders') }}
WHERE ordered_at >= :from_date AND ordered_at < :to_date
GROUP BY channel
ORDER BY channel
